"""DeSD self-distillation of the U-Net encoder: EMA teacher, centring/sharpening maths, pre-training, transfer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from iacseg.core.errors import InputError
from iacseg.models.loading import load_model, load_state, save_model
from iacseg.models.networks.unet import ResEncEncoder, ResEncUNet
from iacseg.train.networks import load_encoder_weights
from iacseg.train.pretrain_desd import (DeSDStudent, DeSDTeacher, cross_entropy, distillation_loss, ema_update,
                                        momentum_at, pretrain_desd, rank_me, teacher_probabilities,
                                        teacher_temperature_at, update_center)
from iacseg.train.segmenter import train_segmenter
from test_train_models import toy_case

TINY_NET = dict(features=(4, 8), strides=((1, 1, 1), (1, 2, 2)), blocks=(1, 1))
TINY_DESD = dict(epochs=1, steps_per_epoch=2, batch=2, lr=1e-3, device="cpu", patch=(8, 16, 16), head_hidden=16,
                 head_bottleneck=8, out_dim=32, **TINY_NET)
SEG = dict(epochs=1, steps_per_epoch=1, patch=(8, 16, 16), batch=2, device="cpu", val_fraction=0.34, **TINY_NET)


def config(folder: Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())


def entropy(p: torch.Tensor) -> float:
    return float(-(p * p.log()).sum(-1).mean())


@pytest.fixture(scope="module")
def toy_cases():
    return [toy_case(s) for s in range(3)]


@pytest.fixture(scope="module")
def desd_folder(tmp_path_factory, toy_cases):
    return pretrain_desd(toy_cases[:2], tmp_path_factory.mktemp("desd") / "enc", **TINY_DESD)


def tiny_pair() -> tuple[DeSDStudent, DeSDTeacher]:
    student = DeSDStudent(ResEncEncoder(2, **TINY_NET), out_dim=32, hidden=16, bottleneck=8)
    return student, DeSDTeacher(student)


# --- EMA teacher -----------------------------------------------------------------------------------------------

def test_ema_update_gives_m_times_teacher_plus_one_minus_m_times_student():
    teacher, student = nn.Linear(3, 2), nn.Linear(3, 2)
    with torch.no_grad():
        teacher.weight.fill_(1.0), teacher.bias.fill_(-2.0)
        student.weight.fill_(3.0), student.bias.fill_(2.0)
    ema_update(teacher, student, 0.75)
    assert torch.equal(teacher.weight, torch.full((2, 3), 1.5)) and torch.equal(teacher.bias, torch.full((2,), -1.0))
    assert torch.equal(student.weight, torch.full((2, 3), 3.0))  # the student is left alone
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    expected = 0.9 * a.weight.detach() + 0.1 * b.weight.detach()
    ema_update(a, b, 0.9)
    assert torch.allclose(a.weight, expected, atol=1e-7)


def test_the_teacher_gets_no_gradients_and_follows_the_students_deepest_head():
    student, teacher = tiny_pair()
    x = torch.randn(2, 2, 8, 16, 16)
    t_logits, _ = teacher(x)
    loss, per_stage = distillation_loss(teacher_probabilities(t_logits, torch.zeros(32), 0.04).chunk(2),
                                        [s.chunk(2) for s in student(x)], 0.1)
    loss.backward()
    assert not t_logits.requires_grad and len(per_stage) == 2
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(p.grad is not None for p in student.encoder.parameters())
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    teacher.follow(student, 0.0)  # momentum 0: the teacher becomes the student's encoder + deepest head
    for name, p in teacher.encoder.state_dict().items():
        assert torch.equal(p, student.encoder.state_dict()[name])
    for name, p in teacher.head.state_dict().items():
        assert torch.equal(p, student.heads[-1].state_dict()[name])


def test_momentum_and_teacher_temperature_schedules_hit_their_end_points():
    assert momentum_at(0, 100, 0.996) == pytest.approx(0.996)
    assert momentum_at(50, 100, 0.996) == pytest.approx(0.998)
    assert momentum_at(100, 100, 0.996) == pytest.approx(1.0)
    assert teacher_temperature_at(0, 100, 0.04, 0.07, 0.1) == pytest.approx(0.04)
    assert teacher_temperature_at(5, 100, 0.04, 0.07, 0.1) == pytest.approx(0.055)
    assert teacher_temperature_at(60, 100, 0.04, 0.07, 0.1) == pytest.approx(0.07)


# --- centring, sharpening and the loss ------------------------------------------------------------------------

def test_centring_removes_the_centre_and_lower_temperature_sharpens():
    center = torch.tensor([0.5, -1.0, 2.0])
    flat = teacher_probabilities(center[None] + 3.0, center, 0.04)  # logits = centre + constant → uniform
    assert torch.allclose(flat, torch.full((1, 3), 1 / 3))
    logits = torch.tensor([[0.2, 0.0, 0.0]])
    warm = teacher_probabilities(logits, torch.zeros(3), 0.1)
    e = math.exp(2.0)
    assert torch.allclose(warm, torch.tensor([[e, 1.0, 1.0]]) / (e + 2.0))  # softmax([2, 0, 0])
    sharp = teacher_probabilities(logits, torch.zeros(3), 0.04)
    assert sharp[0, 0] > warm[0, 0] and entropy(sharp) < entropy(warm)


def test_cross_entropy_of_identical_distributions_is_their_entropy_and_larger_otherwise():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    t_s = 0.1
    assert cross_entropy(p, t_s * p.log(), t_s).item() == pytest.approx(entropy(p), abs=1e-6)
    q = torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])
    assert cross_entropy(p, t_s * q.log(), t_s).item() > entropy(p) + 0.1


def test_each_stage_is_matched_to_the_teacher_on_the_other_view():
    p_a, p_b = torch.tensor([[0.6, 0.3, 0.1]]), torch.tensor([[0.2, 0.2, 0.6]])
    t_s = 0.1
    swapped = [t_s * p_b.log(), t_s * p_a.log()]  # student view a predicts teacher view b exactly, and vice versa
    loss, per_stage = distillation_loss([p_a, p_b], [swapped, swapped], t_s)
    assert loss.item() == pytest.approx((entropy(p_a) + entropy(p_b)) / 2, abs=1e-6)
    same = [t_s * p_a.log(), t_s * p_b.log()]  # matched to its own view: penalised
    loss_same, _ = distillation_loss([p_a, p_b], [swapped, same], t_s)
    assert loss_same.item() > loss.item() and per_stage == pytest.approx([loss.item()] * 2, abs=1e-6)


def test_centre_is_an_exponential_moving_average_of_the_teacher_batch_mean():
    c = update_center(torch.tensor([1.0, 1.0]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), 0.9)
    assert torch.allclose(c, torch.tensor([0.9 + 0.2, 0.9 + 0.3]))


def test_rankme_is_the_effective_rank_of_the_embeddings():
    assert rank_me(torch.eye(8)) == pytest.approx(8.0, rel=1e-4)
    collapsed = torch.ones(16, 1) @ torch.randn(1, 8)
    assert rank_me(collapsed) == pytest.approx(1.0, abs=1e-3)


# --- pre-training and transfer -----------------------------------------------------------------------------------

def test_pretraining_writes_a_loadable_pickle_free_encoder_folder(desd_folder, monkeypatch):
    assert sorted(p.name for p in desd_folder.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    module, cfg = load_model(desd_folder, kind="desd-encoder")
    assert isinstance(module, ResEncEncoder) and cfg["architecture"]["name"] == "ResEncUNetEncoder"
    unet_encoder_keys = {k for k in ResEncUNet(2, **TINY_NET).state_dict() if k.startswith(("stem.", "encoder."))}
    assert set(load_state(desd_folder)) == unet_encoder_keys  # no projection head, no decoder
    assert cfg["training"]["labels_used"] is False and math.isfinite(cfg["metrics"]["loss_last_epoch"])
    assert len(cfg["metrics"]["loss_per_stage_last_epoch"]) == 2
    assert "not a segmenter" in (desd_folder / "MODEL_CARD.md").read_text()
    monkeypatch.setenv("IACSEG_MODEL_PATH", str(desd_folder.parent))
    from iacseg.models.folders import find_models

    assert [m["kind"] for m in find_models() if m["path"] == str(desd_folder.resolve())] == ["desd-encoder"]


def test_pretraining_ignores_the_labels(tmp_path, toy_cases, desd_folder):
    unlabelled = [toy_case(s) for s in range(2)]
    for c in unlabelled:
        c.labels[:] = 0
    out = pretrain_desd(unlabelled, tmp_path / "enc", **TINY_DESD)
    a, b = load_state(desd_folder), load_state(out)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretraining_reads_a_folder_of_bare_cts_without_truth_files(tmp_path):
    from iacseg.io.writers import write_image

    for seed in range(2):
        case = toy_case(seed)
        hu = case.ct.hu.copy()
        hu[:, :3] = -1000.0  # an air band, as every CT has
        (tmp_path / f"ct{seed}").mkdir()
        write_image(tmp_path / f"ct{seed}" / "ct.nii.gz", hu, case.ct.grid)
    reports = []
    out = pretrain_desd(tmp_path, tmp_path / "out" / "enc", **TINY_DESD,
                        progress=lambda stage, f, msg="": reports.append(msg))
    assert config(out)["kind"] == "desd-encoder" and sum("skull_base_bone" in m for m in reports) == 2


def test_transfer_loads_the_encoder_and_leaves_the_decoder_fresh(tmp_path, toy_cases, desd_folder):
    # lr = 0: the saved segmenter holds its step-0 weights, as set up by the init code path
    scratch = load_state(train_segmenter(toy_cases, tmp_path / "scratch", lr=0.0, **SEG))
    child_dir = train_segmenter(toy_cases, tmp_path / "child", init=desd_folder, lr=0.0, **SEG)
    child, teacher = load_state(child_dir), load_state(desd_folder)
    assert all(torch.equal(child[k], teacher[k]) for k in teacher)  # encoder = the DeSD teacher's
    assert not all(torch.equal(child[k], scratch[k]) for k in teacher)
    decoder = [k for k in child if k not in teacher]
    assert decoder and all(torch.equal(child[k], scratch[k]) for k in decoder)  # decoder = a fresh initialisation
    cfg = config(child_dir)
    parent = cfg["training"]["hyperparameters"]["parent"]
    assert parent["kind"] == "desd-encoder" and parent["name"] == "unet-desd-encoder"
    assert (cfg["kind"], cfg["name"], cfg["version"]) == ("segmenter", "unet-demo", "1.0")


def test_a_segmenter_folder_as_init_is_still_a_full_fine_tune(tmp_path, toy_cases):
    parent = train_segmenter(toy_cases, tmp_path / "p", **SEG)
    child = train_segmenter(toy_cases, tmp_path / "c", init=parent, lr=0.0, **SEG)
    a, b = load_state(parent), load_state(child)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert config(child)["training"]["hyperparameters"]["parent"]["kind"] == "segmenter"
    assert config(child)["version"] == "1.1"


def test_encoder_weights_must_match_every_encoder_key(tmp_path):
    from safetensors.torch import save_file

    folder = save_model(tmp_path / "enc", ResEncEncoder(2, **TINY_NET),
                        {"kind": "desd-encoder", "architecture": {"name": "ResEncUNetEncoder", "params": {}}}, "card")
    net = ResEncUNet(2, **TINY_NET)
    load_encoder_weights(net, folder)
    state = load_state(folder)
    state.pop("encoder.1.0.conv2.0.weight")
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match="do not fit this U-Net"):
        load_encoder_weights(net, folder)


def test_cli_train_segmenter_accepts_a_desd_encoder_as_init(desd_folder, tmp_path, monkeypatch, capsys):
    import iacseg.train.segmenter as segmenter
    from iacseg.cli.main import main

    calls = []
    monkeypatch.setattr(segmenter, "train_segmenter", lambda data, out, **kw: calls.append(kw) or out)
    args = ["--phantoms", "2", "--init", str(desd_folder), "-o", str(tmp_path / "s"), "--progress", "none"]
    assert main(["train", "segmenter", *args]) == 0
    assert Path(calls[0]["init"]) == desd_folder
    assert main(["train", "landmarks", *args]) == 2  # a landmark model cannot start from a U-Net encoder
    assert "is a desd-encoder model; fine-tuning the landmarks needs a landmarks model" in capsys.readouterr().err


@pytest.mark.slow  # 8–15 s on 2 busy CPU cores: two small phantoms are generated
def test_pretraining_on_phantom_seeds(tmp_path):
    out = pretrain_desd(range(2), tmp_path / "enc", phantom_options={"slice_mm": 5.0, "matrix": 192},
                        **{**TINY_DESD, "patch": (8, 32, 32)})
    module, cfg = load_model(out)
    assert cfg["kind"] == "desd-encoder" and "2 synthetic head-CT phantoms" in cfg["training"]["data"]
    feats = module(torch.zeros(1, 2, 8, 32, 32))
    assert [f.shape[1] for f in feats] == [4, 8] and np.isfinite(cfg["metrics"]["teacher_rankme_last_epoch"])
