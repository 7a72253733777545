"""3D ViT encoder and masked autoencoder (Jin et al.), MAE residual maps (GRCSF), `iacseg pretrain mae`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from iacseg.cli.main import main
from iacseg.models.networks.vit import (MAE3D, VIT_CONFIGS, ViTEncoder, masked_cube_loss, patchify, random_masking,
    residual_maps, sincos_position_embedding_3d, tokens_to_volume, unpatchify)
from iacseg.models.networks.vit.mae import covering_masks, normalise_cubes

TINY = VIT_CONFIGS["tiny"].params()


def _tiny_mae(patch: int = 8, **kw) -> MAE3D:
    torch.manual_seed(0)
    return MAE3D(2, patch, **TINY, **kw)


# --- masking -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, ratio", [(512, 0.9), (512, 0.75), (64, 0.5), (100, 0.9), (7, 0.5)])
def test_masking_keeps_exactly_the_rounded_share_of_tokens(n, ratio):
    keep, mask = random_masking(3, n, ratio, torch.Generator().manual_seed(0))
    expected = round((1 - ratio) * n)
    assert keep.shape == (3, expected) and keep.dtype == torch.int64
    assert (mask.sum(1) == n - expected).all()
    for b in range(3):  # the kept tokens are exactly the unmasked ones, each once, ascending
        assert torch.equal(keep[b], torch.nonzero(~mask[b]).flatten())


def test_masks_differ_across_seeds_and_repeat_for_the_same_seed():
    a = random_masking(2, 512, 0.9, torch.Generator().manual_seed(1))[0]
    b = random_masking(2, 512, 0.9, torch.Generator().manual_seed(2))[0]
    c = random_masking(2, 512, 0.9, torch.Generator().manual_seed(1))[0]
    assert not torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # each sample of a batch has its own mask


def test_covering_masks_hide_every_token_even_when_repeats_are_too_few():
    masks = covering_masks(2, 50, 0.5, repeats=1, generator=torch.Generator().manual_seed(0))
    assert len(masks) == 2  # one mask hiding 25 of 50 tokens cannot cover them all
    assert all((m.sum(1) == 25).all() for m in masks)
    assert torch.stack(masks).any(0).all()
    masks = covering_masks(1, 64, 0.75, repeats=4, generator=torch.Generator().manual_seed(0))
    assert len(masks) == 4 and torch.stack(masks).any(0).all()


# --- positions and encoder -----------------------------------------------------------------------------------

def test_sincos_positions_refuse_a_width_not_divisible_by_6():
    with pytest.raises(ValueError, match="divisible by 6"):
        sincos_position_embedding_3d((2, 2, 2), 50)
    with pytest.raises(ValueError, match="divisible by 6"):
        ViTEncoder(2, 8, width=64, depth=1, heads=4)


def test_sincos_positions_shape_origin_and_uniqueness():
    pos = sincos_position_embedding_3d((2, 3, 4), 48)
    assert pos.shape == (24, 48) and pos.dtype == torch.float32
    origin = torch.tensor(([0.0] * 8 + [1.0] * 8) * 3)  # sin 0 = 0, cos 0 = 1 for each axis
    assert torch.allclose(pos[0], origin)
    # token 1 is (k=0, j=0, i=1): only the i third changes; its first sine is sin(1·ω₀) = sin 1
    assert torch.allclose(pos[1, :32], origin[:32]) and math.isclose(pos[1, 32].item(), math.sin(1.0), rel_tol=1e-6)
    assert torch.cdist(pos, pos).add(torch.eye(24) * 1e3).min() > 0.1  # every position distinct


def test_configs_match_the_paper_and_suit_sincos():
    for name, (w, dw) in {"S": (240, 120), "M": (480, 240), "L": (960, 480)}.items():
        c = VIT_CONFIGS[name]
        assert (c.width, c.depth, c.heads, c.decoder_width, c.decoder_depth, c.decoder_heads) == (w, 12, 12, dw, 8, 12)
    for c in VIT_CONFIGS.values():
        assert c.width % 6 == 0 and c.decoder_width % 6 == 0 and c.width % c.heads == 0
    n = sum(p.numel() for p in MAE3D(2, 8, **VIT_CONFIGS["S"].params()).parameters())
    assert 9.5e6 < n < 10.5e6  # "10M" at patch 8³ (Jin et al., supplementary Table 1)


@pytest.mark.parametrize("patch", [4, 8, 16])
def test_every_patch_size_builds_and_encodes(patch):
    torch.manual_seed(0)
    enc = ViTEncoder(2, patch, width=48, depth=3, heads=4)
    out = enc(torch.rand(2, 2, 16, 32, 48), hidden_blocks=(1, 3))
    grid = (16 // patch, 32 // patch, 48 // patch)
    assert out.grid == grid and out.tokens.shape == (2, math.prod(grid), 48)
    assert len(out.hidden) == 2 and out.hidden[1].shape == out.tokens.shape
    assert tokens_to_volume(out.tokens, grid).shape == (2, 48, *grid)
    loss = _tiny_mae(patch)(torch.rand(1, 2, 16, 32, 32)).loss
    assert torch.isfinite(loss) and loss > 0


def test_encoder_refuses_input_not_divisible_by_the_patch():
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        ViTEncoder(2, 8, width=48, depth=1, heads=4)(torch.rand(1, 2, 16, 30, 32))


def test_token_order_is_the_same_for_embedding_patchify_and_subsets():
    torch.manual_seed(0)
    enc = ViTEncoder(2, 4, width=48, depth=0, heads=4)  # no blocks: tokens = LayerNorm(embedding + positions)
    x = torch.rand(2, 2, 8, 12, 16)
    tokens, grid = enc.embed(x)
    w = enc.patch_embed.weight.reshape(48, -1)
    linear = patchify(x, 4) @ w.T + enc.patch_embed.bias + sincos_position_embedding_3d(grid, 48)
    assert torch.allclose(tokens, linear, atol=1e-5)
    keep = torch.tensor([[0, 5, 11], [3, 4, 23]])
    assert torch.allclose(enc(x, keep).tokens, torch.gather(enc(x).tokens, 1, keep[..., None].expand(-1, -1, 48)))
    assert torch.equal(unpatchify(patchify(x, 4), 4, grid, 2), x)


# --- loss ------------------------------------------------------------------------------------------------------

def _setup(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 2, 16, 16, 16, generator=g)
    perfect = normalise_cubes(patchify(x, 8), 2)
    _, mask = random_masking(2, 8, 0.5, g)
    return x, perfect, mask


def test_loss_is_zero_for_a_perfect_reconstruction_and_positive_otherwise():
    x, perfect, mask = _setup()
    assert masked_cube_loss(x, perfect, mask, 8).item() == pytest.approx(0.0, abs=1e-9)
    assert masked_cube_loss(x, perfect + 0.1, mask, 8).item() == pytest.approx(0.01, rel=1e-4)
    assert masked_cube_loss(x, torch.zeros_like(perfect), mask, 8).item() == pytest.approx(1.0, rel=1e-3)


def test_loss_counts_hidden_cubes_only():
    x, perfect, mask = _setup()
    b, t = map(int, torch.nonzero(~mask)[0])  # a visible cube
    wrong_visible = perfect.clone()
    wrong_visible[b, t] += 5.0
    assert masked_cube_loss(x, wrong_visible, mask, 8).item() == pytest.approx(0.0, abs=1e-9)
    b, t = map(int, torch.nonzero(mask)[0])  # a hidden cube
    wrong_hidden = perfect.clone()
    wrong_hidden[b, t] += 2.0
    assert masked_cube_loss(x, wrong_hidden, mask, 8).item() == pytest.approx(4.0 / int(mask.sum()), rel=1e-4)


def test_loss_normalises_each_cube_so_a_constant_offset_per_cube_does_not_matter():
    x, _, mask = _setup()
    prediction = torch.randn(2, 8, 2 * 8 ** 3, generator=torch.Generator().manual_seed(3))
    offsets = torch.rand(2, 8, 1, generator=torch.Generator().manual_seed(4)).expand(-1, -1, 2 * 8 ** 3)
    shifted = x + unpatchify(offsets, 8, (2, 2, 2), 2)
    before, after = masked_cube_loss(x, prediction, mask, 8), masked_cube_loss(shifted, prediction, mask, 8)
    assert after.item() == pytest.approx(before.item(), rel=1e-5)
    # without per-cube normalisation the same offsets do change the loss
    assert masked_cube_loss(shifted, prediction, mask, 8, normalise=False).item() != pytest.approx(
        masked_cube_loss(x, prediction, mask, 8, normalise=False).item(), rel=1e-3)


# --- residual maps -----------------------------------------------------------------------------------------------

def test_residual_maps_are_zero_where_the_reconstruction_equals_the_input(monkeypatch):
    mae = _tiny_mae(8)
    x = torch.rand(1, 2, 16, 16, 24, generator=torch.Generator().manual_seed(0))
    perfect = normalise_cubes(patchify(x, 8), 2)
    wrong = perfect.clone()
    wrong[:, 5] = -wrong[:, 5]  # cube 5 = (k 0, j 1, i 2) reconstructed as its negative image
    monkeypatch.setattr(mae, "predict", lambda inp, keep: wrong)
    maps = residual_maps(mae, x, ratios=(0.5, 0.75), repeats=3, generator=torch.Generator().manual_seed(1))
    assert maps.shape == (1, 2, 16, 16, 24)
    bad = torch.zeros(16, 16, 24, dtype=torch.bool)
    bad[0:8, 8:16, 16:24] = True
    assert maps[0][:, ~bad].abs().max() < 1e-4
    assert (maps[0][:, bad] > 0.2).all()  # 1 − (m² − s²)/(m² + s²) ≈ 0.5 for uniform noise in 0..1


def test_residual_maps_of_a_real_mae_have_the_input_size_and_repeat_with_the_seed():
    mae = _tiny_mae(4)
    x = torch.rand(2, 2, 8, 8, 16, generator=torch.Generator().manual_seed(0))
    a = residual_maps(mae, x, repeats=2, generator=torch.Generator().manual_seed(5))
    b = residual_maps(mae, x, repeats=2, generator=torch.Generator().manual_seed(5))
    assert a.shape == (2, 2, 8, 8, 16) and torch.equal(a, b)
    assert (a >= 0).all() and (a <= 2).all() and a.max() > 0
    assert mae.training  # the model's mode is restored


# --- command line ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, words", [
    (["--phantoms", "2", "--patch", "8", "--roi", "12", "32", "32"], "multiple of the patch size 8"),
    (["--phantoms", "2", "--mask-ratio", "1.0"], "--mask-ratio"),
    (["--phantoms", "2", "--data", "D"], "either --data"),
    ([], "either --data"),
    (["--data", "/no/such/folder"], "does not exist"),
])
def test_pretrain_refuses_bad_requests(extra, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "mae", "-o", "M", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "M").exists()


@pytest.mark.slow
def test_tiny_mae_pretrains_on_phantoms_and_its_folder_loads_and_is_listed(tmp_path, monkeypatch):
    from iacseg.models.folders import find_models
    from iacseg.models.loading import load_model

    out = tmp_path / "models" / "mae-tiny"
    code = main(["pretrain", "mae", "--phantoms", "2", "--phantom-slice-mm", "5", "--phantom-matrix", "192",
                 "-o", str(out), "--config", "tiny", "--patch", "8", "--roi", "16", "32", "32", "--epochs", "2",
                 "--steps-per-epoch", "2", "--batch", "2", "--device", "cpu", "--progress", "none"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "mae" and config["architecture"]["name"] == "MAE3D"
    assert config["patch"] == 8 and config["architecture"]["params"]["width"] == 48
    assert config["input"]["windows_hu"] == [[-100.0, 300.0], [0.0, 1600.0]]
    assert math.isfinite(config["metrics"]["final_loss"]) and config["metrics"]["regions_from_landmarks"] == 2
    assert len(config["training"]["data_hash"]) == 16
    module, loaded = load_model(out, kind="mae")
    assert isinstance(module, MAE3D) and loaded["sha256"] == config["sha256"]
    assert residual_maps(module, torch.rand(1, 2, 16, 32, 32)).shape == (1, 2, 16, 32, 32)
    monkeypatch.setenv("IACSEG_MODEL_PATH", str(tmp_path / "models"))
    assert any(m["path"] == str(out.resolve()) and m["kind"] == "mae" for m in find_models())


def test_mae_pretrains_on_a_folder_of_unlabelled_cts(tmp_path):
    from iacseg.io.writers import write_image
    from iacseg.models.loading import load_model
    from iacseg.phantom import make_phantom
    from iacseg.train.pretrain_mae import pretrain_mae

    phantom = make_phantom(7, slice_mm=5.0, matrix=192)
    (tmp_path / "cts").mkdir()
    write_image(tmp_path / "cts" / "head.nii.gz", phantom.ct.hu, phantom.ct.grid)  # no truth beside it
    out = pretrain_mae(tmp_path / "cts", tmp_path / "m", config="tiny", patch=16, roi_size=(16, 32, 32), epochs=1,
                       steps_per_epoch=1, batch=1, device="cpu")
    config = json.loads((out / "config.json").read_text())
    assert config["metrics"]["regions"] == 1 and config["metrics"]["regions_from_landmarks"] == 0
    assert isinstance(load_model(out)[0], MAE3D)


def test_pretrain_desd_passes_the_options_given_to_the_desd_trainer(tmp_path, monkeypatch):
    import iacseg.train.pretrain_desd as desd

    calls = []
    monkeypatch.setattr(desd, "pretrain_desd", lambda data, out, **kw: calls.append((data, out, kw)) or out)
    assert main(["pretrain", "desd", "--phantoms", "3", "--phantom-seed", "20", "--phantom-matrix", "192",
                 "-o", str(tmp_path / "d"), "--epochs", "2", "--patch", "16", "32", "32", "--progress", "none"]) == 0
    data, out, kw = calls[0]
    assert data == range(20, 23) and out == tmp_path / "d"
    assert kw["epochs"] == 2 and kw["patch"] == (16, 32, 32) and kw["phantom_options"] == {"matrix": 192}
    assert "batch" not in kw and "lr" not in kw  # absent options keep the trainer's defaults
