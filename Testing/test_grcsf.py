"""GRCSF in 3D: U-Net++ with a frozen MAE's residual maps, regional (RCU) and global (GCU) compensation units."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iacseg.core.errors import InputError
from iacseg.io import CTVolume
from iacseg.core.grid import Grid
from iacseg.models.networks.grcsf import GRCSF, build_grcsf
from iacseg.models.loading import grcsf_from_mae
from iacseg.models.networks.grcsf_blocks import GlobalCompensationUnit, ImportanceScore, box_patchify, box_unpatchify
from iacseg.models.loading import load_model, save_model
from iacseg.models.segmenter import CalcificationSegmenter
from iacseg.models.networks.vit import MAE3D, VIT_CONFIGS

TINY_MAE = {"in_channels": 2, "patch": 4, **VIT_CONFIGS["tiny"].params()}
TINY = dict(features=(4, 8, 16), strides=((1, 1, 1), (2, 2, 2), (2, 2, 2)), repeats=1, rcu_width=12, rcu_heads=2)


def tiny_grcsf(seed: int = 0, **kw) -> GRCSF:
    torch.manual_seed(seed)
    return GRCSF(TINY_MAE, **{**TINY, **kw})


def ct_window(batch: int = 2, size=(8, 16, 16), seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 2, *size, generator=torch.Generator().manual_seed(seed))


def test_tiny_grcsf_keeps_the_input_size_and_refuses_sizes_off_its_divisor():
    net = tiny_grcsf().eval()
    assert net.divisor == (4, 4, 4) and net.rcu_levels == [0, 1]  # strides 4, MAE patch 4; default: last levels
    with torch.no_grad():
        assert net(ct_window(size=(8, 16, 16))).shape == (2, 1, 8, 16, 16)
        assert net(ct_window(1, size=(4, 12, 8))).shape == (1, 1, 4, 12, 8)
        with pytest.raises(ValueError, match="multiples of"):
            net(ct_window(1, size=(6, 16, 16)))
    wide = tiny_grcsf(strides=((1, 1, 1), (1, 2, 2), (1, 2, 2)), rcu_patch=(4, 8, 8))
    assert wide.divisor == (4, 8, 8)  # lcm of strides (1, 4, 4), MAE patch 4 and RCU patch (4, 8, 8)


def test_deep_supervision_gives_every_full_resolution_node_while_training_and_one_map_at_eval():
    net = tiny_grcsf(deep_supervision=True)
    x = ct_window()
    outs = net.train()(x)
    assert isinstance(outs, list) and len(outs) == 2 and all(o.shape == (2, 1, 8, 16, 16) for o in outs)
    with torch.no_grad():
        final = net.eval()(x)
    assert torch.is_tensor(final) and final.shape == (2, 1, 8, 16, 16)


def test_mae_stays_frozen_through_training_steps_and_is_saved_with_the_network():
    net = tiny_grcsf()
    mae_before = {k: v.clone() for k, v in net.mae.state_dict().items()}
    rest_before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("mae.")}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.05)
    net.train()
    assert not net.mae.training  # train() leaves the MAE in eval mode
    for _ in range(2):
        loss = net(ct_window()).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is None and not p.requires_grad for p in net.mae.parameters())
    assert all(torch.equal(v, mae_before[k]) for k, v in net.mae.state_dict().items())
    assert any(not torch.equal(v, rest_before[k]) for k, v in net.state_dict().items() if k in rest_before)
    assert sum(k.startswith("mae.encoder.") for k in net.state_dict()) > 0


def test_eval_output_is_deterministic_and_independent_of_the_rest_of_the_batch():
    net = tiny_grcsf().eval()
    x = ct_window(3)
    with torch.no_grad():
        first, second = net(x), net(x)
        alone = net(x[1:2])
    assert torch.equal(first, second)
    assert torch.allclose(alone, first[1:2], atol=1e-5)
    net.train()  # training draws new masks each call (an augmentation)
    assert not torch.equal(net.residual_maps(x), net.residual_maps(x))


def test_residual_maps_reach_the_output_only_through_the_rcu():
    x = ct_window()
    zeros = torch.zeros(2, 2, 8, 16, 16)
    with torch.no_grad():
        net = tiny_grcsf().eval()
        maps = net.residual_maps(x)
        assert maps.shape == (2, 2, 8, 16, 16) and float(maps.min()) >= 0.0 and float(maps.max()) > 0.0
        assert torch.equal(net(x), net(x, residuals=maps))
        assert (net(x) - net(x, residuals=zeros)).abs().max() > 1e-4
        plain = tiny_grcsf(rcu_levels=()).eval()  # control: without an RCU the maps cannot matter
        assert torch.equal(plain(x), plain(x, residuals=zeros))


def test_importance_scores_are_independent_per_patch_probabilities():
    torch.manual_seed(0)
    score = ImportanceScore(channels=4, patch=(2, 2, 2), hidden=8)
    features = torch.randn(1, 4, 4, 4, 4)  # 8 patches of 2³
    with torch.no_grad():
        s = score(features)
        assert s.shape == (1, 8) and float(s.min()) > 0.0 and float(s.max()) < 1.0
        changed = features.clone()
        changed[:, :, :2, :2, 2:] += 5.0  # patch (0, 0, 1) = token 1
        moved = score(changed) != s
        assert moved[0, 1] and int(moved.sum()) == 1  # only that patch's score changes
        last = score.mlp[-1]
        last.weight.zero_()
        last.bias.fill_(math.log(3.0))  # sigmoid(log 3) = 3/4 for every patch, whatever the features
        assert torch.allclose(score(features), torch.full((1, 8), 0.75))


def test_gcu_residual_is_the_cosine_between_re_upscaled_coarse_and_skip_features():
    gcu = GlobalCompensationUnit(channels=3, coarse_channels=3, nodes=1)
    with torch.no_grad():
        gcu.reupscale.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1, 1))
        gcu.reupscale.bias.zero_()
        for se in (gcu.se_skip, gcu.se_up[0]):  # every channel gate = sigmoid(0) = 1/2
            se.gate[2].weight.zero_()
            se.gate[2].bias.zero_()
        a = torch.tensor([1.0, -2.0, 0.5]).reshape(1, 3, 1, 1, 1)
        skip, up = a.expand(1, 3, 4, 4, 4), torch.ones(1, 3, 4, 4, 4)
        same = gcu.residual(0, up, *gcu.prepare(skip, a.expand(1, 3, 2, 2, 2)))
        opposite = gcu.residual(0, up, *gcu.prepare(skip, -a.expand(1, 3, 2, 2, 2)))
    assert same.shape == (1, 1, 4, 4, 4)
    assert torch.allclose(same, torch.ones_like(same)) and torch.allclose(opposite, -torch.ones_like(same))


def test_box_patches_round_trip_in_raster_order():
    x = torch.arange(2 * 3 * 4 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 4, 6)
    vectors = box_patchify(x, (2, 2, 3))
    assert vectors.shape == (2, 2 * 2 * 2, 3 * 12)
    assert torch.equal(vectors[0, 1, :12], x[0, 0, :2, :2, 3:].flatten())  # token 1 = k 0, j 0, i 1
    assert torch.equal(box_unpatchify(vectors, (2, 2, 3), (2, 2, 2), 3), x)


def test_a_few_optimiser_steps_learn_a_tiny_bright_voxel_task():
    x = ct_window(2, seed=3)
    target = (x[:, :1] > 0.7).float()  # "calcification" = bright voxels of the first window
    share = float(target.mean())
    best_constant = -(share * math.log(share) + (1 - share) * math.log(1 - share))  # BCE of any fixed guess ≥ this
    net = tiny_grcsf(seed=2).train()
    opt = torch.optim.Adam((p for p in net.parameters() if p.requires_grad), lr=2e-2)
    losses = []
    for _ in range(12):
        loss = F.binary_cross_entropy_with_logits(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1 and losses[-1] < best_constant - 0.05, (losses, best_constant)


def test_model_folder_round_trip_gives_identical_outputs(tmp_path):
    net = tiny_grcsf().eval()
    config = {"name": "grcsf-test", "version": "1.0", "kind": "segmenter",
              "architecture": {"name": "GRCSF", "params": net.config}}
    save_model(tmp_path / "grcsf", net, config, "# test\n")
    loaded, cfg = load_model(tmp_path / "grcsf", kind="segmenter")
    assert isinstance(loaded, GRCSF) and cfg["architecture"]["params"]["mae"] == TINY_MAE | {
        "mask_ratio": 0.9, "norm_pix_loss": True}
    x = ct_window()
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert isinstance(build_grcsf(cfg["architecture"]["params"]), GRCSF)


def test_grcsf_from_mae_folder_takes_the_pretrained_mae_weights(tmp_path):
    torch.manual_seed(5)
    mae = MAE3D(**TINY_MAE)
    save_model(tmp_path / "mae", mae, {"name": "mae-test", "kind": "mae",
                                       "architecture": {"name": "MAE3D", "params": mae.config}}, "# mae\n")
    net = grcsf_from_mae(tmp_path / "mae", **TINY)
    assert all(torch.equal(v, mae.state_dict()[k]) for k, v in net.mae.state_dict().items())
    assert not any(p.requires_grad for p in net.mae.parameters())
    assert net.config["mae"] == mae.config and net.config["in_channels"] == 2
    with pytest.raises(InputError, match="intensity channels"):
        grcsf_from_mae(tmp_path / "mae", in_channels=3, **TINY)
    seg = tiny_grcsf()
    save_model(tmp_path / "seg", seg, {"name": "s", "kind": "segmenter",
                                       "architecture": {"name": "GRCSF", "params": seg.config}}, "# s\n")
    with pytest.raises(InputError, match="not a masked autoencoder"):
        grcsf_from_mae(tmp_path / "seg", **TINY)


def test_segmenter_wrapper_runs_a_grcsf_by_sliding_windows_on_a_ct():
    net = tiny_grcsf()
    hu = np.full((10, 20, 20), 30.0, dtype=np.float32)
    hu[4:6, 8:11, 8:11] = 600.0  # one bright blob above the 130 HU gate
    vol = CTVolume(hu, Grid(hu.shape, (0.5, 0.5, 1.0), (0.0, 0.0, 0.0)))
    config = {"kind": "segmenter", "input": {"patch_size_kji": [8, 16, 16], "context_margin_kji": [0, 0, 0]}}
    proba = CalcificationSegmenter(net, config).predict_proba(vol)
    assert proba.shape == hu.shape and proba.dtype == np.float32
    assert float(proba.min()) >= 0.0 and float(proba.max()) <= 1.0 and float(proba[4:6, 8:11, 8:11].min()) > 0.0
