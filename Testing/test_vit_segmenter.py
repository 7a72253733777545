"""ViT segmenters (Jin et al.): four decoders on the 3D ViT encoder, ``--arch vit`` training from scratch or from an
MAE, loading and listing the model folders, and ``iacseg segment --model <vit model>``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from iacseg.cli.main import main
from iacseg.core.errors import InputError, ModelError
from iacseg.models.folders import find_models
from iacseg.models.loading import load_model, load_state, save_model
from iacseg.models.networks.vit import MAE3D, VIT_CONFIGS, encoder_state
from iacseg.models.networks.vit.decoders import DECODERS, unetr_hidden_blocks
from iacseg.models.networks.vit.segmenter_net import ViTSegmenter, vit_segmenter_params
from iacseg.train.segmenter import train_segmenter
from test_train_models import toy_case

VIT = dict(arch="vit", vit_config="tiny", vit_patch=8, decoder_channels=4)
RUN = dict(epochs=1, steps_per_epoch=2, patch=(8, 16, 16), batch=2, device="cpu", val_fraction=0.34)
MAE_WINDOWS = [[-50.0, 250.0], [0.0, 1500.0]]  # not the segmenter's defaults: the MAE's windows must win


def config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def tiny_mae_folder(folder: Path, patch: int = 8, **sizes) -> Path:
    """A model folder of kind "mae" as `iacseg pretrain mae` writes it (random weights, tiny sizes)."""
    torch.manual_seed(3)
    mae = MAE3D(2, patch, **{**VIT_CONFIGS["tiny"].params(), **sizes})
    cfg = {"name": "mae-tiny", "version": "1.0", "kind": "mae", "architecture": {"name": "MAE3D", "params": mae.config},
           "vit_config": "tiny", "patch": patch, "input": {"windows_hu": MAE_WINDOWS}, "threshold": None}
    return save_model(folder, mae, cfg, "# tiny MAE\n")


@pytest.fixture(scope="module")
def toy_cases():
    return [toy_case(s) for s in range(3)]


@pytest.fixture(scope="module")
def mae_folder(tmp_path_factory) -> Path:
    return tiny_mae_folder(tmp_path_factory.mktemp("mae") / "mae-tiny")


@pytest.mark.parametrize("patch", [4, 8, 16])
@pytest.mark.parametrize("decoder", DECODERS)
def test_every_decoder_gives_one_logit_per_voxel_at_every_patch_size(decoder, patch):
    torch.manual_seed(0)
    net = ViTSegmenter(**vit_segmenter_params("tiny", patch, decoder, in_channels=2, decoder_channels=4))
    assert net.divisor == (patch, patch, patch) and net.deep_supervision is False
    x = torch.rand(2, 2, 16, 32, 48)  # token grid 1×2×3 at patch 16: odd sizes too
    logits = net(x)
    assert logits.shape == (2, 1, 16, 32, 48) and torch.isfinite(logits).all()
    logits.square().mean().backward()  # the logits depend on the encoder: it is trained with the decoder
    assert net.encoder.patch_embed.weight.grad.abs().sum() > 0
    assert not torch.allclose(logits[0], logits[1])  # and on the input


def test_the_network_refuses_input_that_is_not_a_multiple_of_the_patch():
    net = ViTSegmenter(**vit_segmenter_params("tiny", 8, "upscale-nearest", decoder_channels=4))
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        net(torch.rand(1, 2, 12, 16, 16))


def test_unetr_reads_evenly_spaced_blocks_as_the_paper_does():
    assert unetr_hidden_blocks(12, 16) == (3, 6, 9)  # Hatamizadeh et al.: blocks 3, 6, 9 and the last (12)
    assert unetr_hidden_blocks(12, 8) == (4, 8)
    assert unetr_hidden_blocks(12, 4) == (6,)
    assert unetr_hidden_blocks(2, 16) == (1, 1, 2)  # a shallow encoder repeats blocks rather than skip a level


@pytest.mark.parametrize("decoder", DECODERS)
def test_each_decoder_trains_and_its_folder_loads_pickle_free_and_is_listed(decoder, toy_cases, tmp_path,
                                                                            monkeypatch):
    patch = 4 if decoder in ("sfpn", "mae") else 8  # both patch sizes run through the trainer
    out = train_segmenter(toy_cases, tmp_path / "models" / f"vit-{decoder}", **{**RUN, **VIT, "vit_patch": patch},
                          decoder=decoder, lr=1e-3)
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    cfg = config(out)
    params = cfg["architecture"]["params"]
    assert cfg["architecture"]["name"] == "ViTSegmenter" and cfg["kind"] == "segmenter"
    assert (params["decoder"], params["patch"], params["width"], params["deep_supervision"]) == (decoder, patch, 48,
                                                                                                  False)
    assert cfg["name"] == f"vit-tiny-p{patch}-{decoder}" and cfg["version"] == "1.0"
    assert np.isfinite(cfg["metrics"]["train_loss_last_epoch"]) and 0.01 <= cfg["threshold"] <= 0.99
    assert cfg["training"]["hyperparameters"]["arch"] == "vit" and f"{decoder} decoder" in (out / "MODEL_CARD.md").read_text()
    module, loaded = load_model(out, kind="segmenter")
    assert isinstance(module, ViTSegmenter) and module.decoder_name == decoder
    state = load_state(out)
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())
    monkeypatch.setenv("IACSEG_MODEL_PATH", str(tmp_path / "models"))
    assert any(m["path"] == str(out.resolve()) and m["kind"] == "segmenter" for m in find_models())


def test_mae_init_copies_the_encoder_and_takes_the_maes_patch_and_windows(mae_folder, toy_cases, tmp_path):
    out = train_segmenter(toy_cases, tmp_path / "child", arch="vit", decoder="mae", lr=0.0, **RUN, init=mae_folder)
    child, mae = load_state(out), encoder_state(load_state(mae_folder))
    assert {k.removeprefix("encoder.") for k in child if k.startswith("encoder.")} == set(mae)
    assert all(torch.equal(child[f"encoder.{k}"], v) for k, v in mae.items())  # lr 0: the step-0 weights
    # the MAE decoder is reset (not the MAE's reconstruction decoder) and predicts one logit per voxel of a cube
    full = load_state(mae_folder)
    assert child["decoder.transformer.blocks.0.linear1.weight"].shape == full["decoder.blocks.0.linear1.weight"].shape
    assert not torch.equal(child["decoder.transformer.blocks.0.linear1.weight"], full["decoder.blocks.0.linear1.weight"])
    assert child["decoder.transformer.head.weight"].shape[0] == 8 ** 3
    cfg = config(out)
    assert cfg["input"]["windows_hu"] == MAE_WINDOWS and cfg["architecture"]["params"]["patch"] == 8
    assert (cfg["name"], cfg["version"]) == ("vit-tiny-p8-mae", "1.0")
    parent = cfg["training"]["hyperparameters"]["parent"]
    assert (parent["kind"], parent["name"]) == ("mae", "mae-tiny")


@pytest.mark.parametrize("request_, words", [
    (dict(vit_patch=4), "ViT patch size 4 does not match the MAE's patch size 8"),
    (dict(vit_config="S"), "ViT configuration S (width 240, depth 12, heads 12) does not match the MAE's encoder"),
    (dict(arch="resenc-unet"), "cannot start from a mae model"),
    (dict(arch="vit", patch=(12, 16, 16)), "must be a multiple of (8, 8, 8)"),
])
def test_an_mae_that_does_not_fit_the_request_is_refused(request_, words, mae_folder, toy_cases, tmp_path):
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        train_segmenter(toy_cases, tmp_path / "x", **{**RUN, "arch": "vit", **request_}, init=mae_folder)
    assert not (tmp_path / "x").exists()


def test_mae_weights_of_another_width_are_refused(tmp_path, toy_cases):
    folder = tiny_mae_folder(tmp_path / "mae", width=24, heads=4)
    cfg = config(folder)
    cfg["architecture"]["params"]["width"] = 48  # the config claims the tiny width; the weights are 24 wide
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="do not match its MAE3D configuration"):
        train_segmenter(toy_cases, tmp_path / "x", arch="vit", **RUN, init=folder)


def test_a_vit_segmenter_fine_tunes_from_its_parent(toy_cases, tmp_path):
    parent = train_segmenter(toy_cases, tmp_path / "p", **RUN, **VIT, decoder="upscale-nearest", name="site-vit")
    child = train_segmenter(toy_cases, tmp_path / "c", **RUN, init=parent, lr=0.0)  # --arch implied by the parent
    a, b = load_state(parent), load_state(child)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (config(child)["name"], config(child)["version"]) == ("site-vit", "1.1")
    with pytest.raises(InputError, match="fine-tune it with the vit architecture"):
        train_segmenter(toy_cases, tmp_path / "x", **RUN, init=parent, arch="resenc-unet")
    with pytest.raises(InputError, match="does not match the init segmenter's decoder"):
        train_segmenter(toy_cases, tmp_path / "x", **RUN, init=parent, decoder="unetr")


def test_grcsf_trains_from_an_mae_folder_and_keeps_that_mae_frozen(mae_folder, toy_cases, tmp_path):
    out = train_segmenter(toy_cases, tmp_path / "grcsf", arch="grcsf", init=mae_folder, features=(4, 8),
                          strides=((1, 1, 1), (1, 2, 2)), grcsf={"repeats": 1, "rcu_width": 12, "rcu_heads": 2},
                          **RUN, lr=1e-2)
    cfg = config(out)
    assert (cfg["architecture"]["name"], cfg["name"], cfg["input"]["windows_hu"]) == ("GRCSF", "grcsf", MAE_WINDOWS)
    assert cfg["architecture"]["params"]["features"] == [4, 8]
    module, _ = load_model(out, kind="segmenter")
    mae = load_state(mae_folder)
    assert all(torch.equal(v, mae[k]) for k, v in module.mae.state_dict().items())  # trained around, not changed


def test_grcsf_from_a_damaged_mae_folder_is_a_clear_error(toy_cases, tmp_path):
    """Weights of another MAE under an MAE's config: one clear error naming the damage, never a torch traceback."""
    mae = tiny_mae_folder(tmp_path / "mae")
    other = tiny_mae_folder(tmp_path / "other", patch=4)
    (mae / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises((InputError, ModelError), match="damaged"):
        train_segmenter(toy_cases, tmp_path / "g", arch="grcsf", **RUN, init=mae)
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("extra, words", [
    (["--decoder", "sfpn"], "(--decoder): decoder: only for architecture vit, not resenc-unet"),
    (["--arch", "grcsf"], "(--init): architecture grcsf needs the MAE"),
    (["--arch", "vit", "--vit-patch", "16", "--patch", "8", "16", "16"], "must be a multiple of (16, 16, 16)"),
    (["--arch", "resenc-unet", "--init", "MAE"], "(--arch): architecture resenc-unet cannot start from a mae model"),
    (["--init", "MAE", "--vit-config", "S"], "does not match the MAE's encoder"),
    (["--arch", "grcsf", "--init", "MAE", "--vit-patch", "8"], "(--vit-patch): ViT patch size: only for architecture vit"),
])
def test_bad_combinations_exit_2_with_one_line(extra, words, mae_folder, tmp_path, capsys, monkeypatch):
    import iacseg.train.segmenter as segmenter

    monkeypatch.setattr(segmenter, "train_segmenter", lambda data, out, **kw: pytest.fail("must not train"))
    extra = [str(mae_folder) if e == "MAE" else e for e in extra]
    assert main(["train", "segmenter", "--phantoms", "2", "-o", str(tmp_path / "s"), "--progress", "none",
                 *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_cli_passes_the_vit_options_and_accepts_an_mae_as_init(mae_folder, tmp_path, monkeypatch, capsys):
    import iacseg.train.segmenter as segmenter

    calls = []
    monkeypatch.setattr(segmenter, "train_segmenter", lambda data, out, **kw: calls.append(kw) or out)
    assert main(["train", "segmenter", "--phantoms", "2", "-o", str(tmp_path / "s"), "--progress", "none",
                 "--arch", "vit", "--decoder", "mae", "--init", str(mae_folder)]) == 0
    assert (calls[0]["arch"], calls[0]["decoder"], Path(calls[0]["init"])) == ("vit", "mae", mae_folder)
    assert main(["train", "landmarks", "--phantoms", "2", "-o", str(tmp_path / "l"), "--arch", "vit"]) == 2
    assert "segmenter options" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["vit", "grcsf"])
def test_segment_with_a_vit_or_grcsf_model_writes_the_contract_files(arch, toy_cases, mae_folder, tmp_path):
    # ~3 s each on one idle core: a tiny network, a 192² phantom at 5 mm, the shipped landmark model
    from iacseg.core.contracts import (LABELS_FILE, LANDMARKS_FILE, PHANTOM_CT_FILE, REPORT_CSV, REPORT_JSON,
        SEGMENTATION_FILE)
    from iacseg.phantom import make_phantom, write_phantom

    run = {**RUN, "patch": (16, 32, 32)}
    if arch == "vit":
        model, name = train_segmenter(toy_cases, tmp_path / "m", **run, **VIT, decoder="unetr"), "vit-tiny-p8-unetr"
    else:
        model = train_segmenter(toy_cases, tmp_path / "m", arch="grcsf", init=mae_folder, features=(4, 8),
                                strides=((1, 1, 1), (1, 2, 2)), grcsf={"repeats": 1, "rcu_width": 12, "rcu_heads": 2},
                                **run)
        name = "grcsf"
    case = write_phantom(make_phantom(5, slice_mm=5.0, matrix=192), tmp_path / "case")
    out = tmp_path / "out"
    assert main(["segment", str(case / PHANTOM_CT_FILE), "--model", str(model), "-o", str(out), "--device", "cpu",
                 "--progress", "none"]) == 0
    for file in (LABELS_FILE, SEGMENTATION_FILE, LANDMARKS_FILE, REPORT_JSON, REPORT_CSV):
        assert (out / file).is_file(), file
    used = next(m for m in json.loads((out / REPORT_JSON).read_text())["models"] if m["kind"] == "segmenter")
    assert (used["name"], used["sha256"]) == (name, config(model)["sha256"])
