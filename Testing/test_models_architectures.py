"""Shapes and the padding/masking behaviour of the ResEnc U-Net and the Depth-Sequence Transformer."""

import pytest
import torch

from iacseg.models.networks.dst import DepthSequenceTransformer, decode_slices, landmark_loss
from iacseg.models.networks.unet import ResEncUNet


def tiny_unet(**kw):
    return ResEncUNet(2, (4, 8, 8), ((1, 1, 1), (1, 2, 2), (2, 2, 2)), (1, 1, 1), **kw)


def tiny_dst(**kw):
    params = dict(in_channels=1, encoder_features=(4, 8), dim=16, depth=2, heads=2, max_slices=12, dropout=0.0)
    params.update(kw)
    return DepthSequenceTransformer(**params)


def test_unet_keeps_the_input_size_and_gives_one_logit_per_voxel():
    net = tiny_unet().eval()
    assert net.divisor == (2, 4, 4)
    out = net(torch.randn(2, 2, 8, 16, 12))
    assert out.shape == (2, 1, 8, 16, 12)


def test_unet_deep_supervision_returns_full_resolution_first_only_in_training():
    net = tiny_unet(deep_supervision=True)
    outs = net.train()(torch.randn(1, 2, 8, 16, 16))
    assert [tuple(o.shape[2:]) for o in outs] == [(8, 16, 16), (8, 8, 8)]
    assert net.eval()(torch.randn(1, 2, 8, 16, 16)).shape == (1, 1, 8, 16, 16)


def test_dst_gives_six_distributions_over_real_slices_only():
    net = tiny_dst().eval()
    vols = [torch.randn(1, 5, 16, 16), torch.randn(1, 12, 16, 16)]
    logits, pad = net(vols, torch.tensor([1.0, 2.5]))
    assert logits.shape == (2, 12, 6)
    assert pad[0].tolist() == [True] * 7 + [False] * 5  # left padding
    prob = torch.softmax(logits, dim=1)
    assert torch.all(prob[0, :7] == 0)
    assert torch.allclose(prob.sum(dim=1), torch.ones(2, 6))


@pytest.mark.parametrize("use_cls,positional", [(False, "sinusoidal"), (True, "learned")])
def test_dst_padding_content_cannot_change_real_outputs(use_cls, positional):
    net = tiny_dst(use_cls=use_cls, positional=positional).eval()
    tokens = torch.randn(1, 12, 16)
    pad = torch.arange(12)[None] < 4
    a = net.forward_tokens(tokens, pad, torch.tensor([1.0]))
    noisy = tokens.clone()
    noisy[:, :4] = 100 * torch.randn(1, 4, 16)
    b = net.forward_tokens(noisy, pad, torch.tensor([1.0]))
    assert torch.allclose(a[:, 4:], b[:, 4:], atol=1e-5)
    assert torch.isinf(b[:, :4]).all()


def test_left_padding_shifts_targets_and_decoding_shifts_back():
    L, D = 12, 5
    logits = torch.full((1, L, 6), -50.0)
    logits[0, :L - D] = float("-inf")
    true_k = torch.tensor([[0, 1, 2, 3, 4, 2]])
    for j, k in enumerate(true_k[0]):
        logits[0, L - D + int(k), j] = 50.0  # the slice k of a 5-slice case sits at position k + 7
    assert float(landmark_loss(logits, true_k, torch.tensor([D]))) < 1e-6
    dec = decode_slices(logits, torch.tensor([D]))
    assert dec["slice"].tolist() == true_k.tolist()
    assert torch.allclose(dec["expected"], true_k.float(), atol=1e-4)
    assert torch.allclose(dec["confidence"], torch.ones(1, 6))


def test_cross_entropy_falls_when_learning_a_bright_slice():
    torch.manual_seed(0)
    net = tiny_dst()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    vols, targets = [], []
    for d, k in ((8, 2), (10, 7), (12, 5)):
        v = torch.zeros(1, d, 16, 16)
        v[0, k] = 1.0  # the landmark is the bright slice
        vols.append(v)
        targets.append([k] * 6)
    targets = torch.tensor(targets)
    n = torch.tensor([v.shape[1] for v in vols])
    spacing = torch.ones(3)
    losses = []
    for _ in range(25):
        logits, _ = net(vols, spacing)
        loss = landmark_loss(logits, targets, n)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_dst_refuses_more_slices_than_its_length():
    with pytest.raises(ValueError):
        tiny_dst()([torch.randn(1, 13, 16, 16)], torch.tensor([1.0]))
