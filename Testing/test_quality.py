"""Quality control of every result: the engine never refuses its own landmarks, reports segments outside a partial
scan as *not assessable* (never 0 mm³), flags what a reader should check, and refuses only what it cannot process
(no head, a body CT) with one clear line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from iacseg.batch import run_batch
from iacseg.cli.main import main
from iacseg.core.contracts import (LABELS_FILE, LANDMARKS, LANDMARKS_FILE, REPORT_CSV, REPORT_JSON,
    SEGMENTATION_FILE, SEGMENTS)
from iacseg.core.errors import InputError
from iacseg.io import CTVolume
from iacseg.core.grid import Grid
from iacseg.io.writers import write_image
from iacseg.mapping import check_landmark_order
from iacseg.models.networks.dst import DepthSequenceTransformer
from iacseg.models.loading import save_model
from iacseg.outputs.markups import read_landmarks
from iacseg.phantom import make_phantom
from iacseg.pipeline import SegmentOptions
from iacseg.preprocess import analyse_head, landmark_prior, midsagittal_plane
from iacseg.quality import contrast_enhanced, refuse_unprocessable, thick_slices

CONTRACT_FILES = (LABELS_FILE, SEGMENTATION_FILE, LANDMARKS_FILE, REPORT_JSON, REPORT_CSV)


def _small_phantom(seed: int):
    return make_phantom(seed, slice_mm=2.5, matrix=256, fov_mm=230.0, noise_hu=6.0)


def _write_ct(path: Path, vol: CTVolume) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, np.round(vol.hu).astype(np.int16), vol.grid)


@pytest.mark.slow
def test_a_scan_starting_above_the_carotid_canals_reports_the_cervical_segments_not_assessable(tmp_path):
    ph = _small_phantom(70301)
    canal = max(ph.landmarks[f"{s}_carotid_canal"].z_mm for s in "LR")
    g = ph.ct.grid
    z = g.origin[2] + np.arange(g.shape[0]) * g.spacing[2]
    first = int(np.flatnonzero(z >= canal + 3.0)[0])
    grid = Grid((g.shape[0] - first,) + g.shape[1:], g.spacing, (g.origin[0], g.origin[1], float(z[first])))
    _write_ct(tmp_path / "in" / "partial" / "ct.nii.gz", CTVolume(ph.ct.hu[first:].copy(), grid, {}))
    counts = run_batch([tmp_path / "in"], tmp_path / "out", SegmentOptions(device="cpu"))
    assert counts["done"] == 1
    out = tmp_path / "out" / "partial"
    assert all((out / f).is_file() for f in CONTRACT_FILES)
    report = json.loads((out / REPORT_JSON).read_text())
    assert report["qc"]["status"] in ("review", "unusable")
    assert {"L_cervical", "R_cervical"} <= set(report["qc"]["not_assessable"])
    assert "incomplete_coverage" in {r["code"] for r in report["qc"]["reasons"]}
    for name in ("L_cervical", "R_cervical"):
        row = report["segments"][name]
        assert row["assessable"] is False and row["volume_mm3"] is None and row["agatston"] is None
        assert row["scanned_volume_mm3"] is not None
    for name in ("L_cavernous", "R_cavernous"):
        assert report["segments"][name]["assessable"] is True and report["segments"][name]["volume_mm3"] is not None
    assert report["total"]["complete"] is False
    rows = {r["segment"]: r for r in csv.DictReader((out / REPORT_CSV).open())}
    assert rows["L_cervical"]["assessable"] == "not assessable" and rows["L_cervical"]["volume_mm3"] == ""
    assert rows["total"]["assessable"] == "incomplete"
    summary = {r["case"]: r for r in csv.DictReader((tmp_path / "out" / "summary.csv").open())}["partial"]
    assert summary["qc_status"] == report["qc"]["status"]
    assert summary["L_cervical_mm3"] == "not assessable" and "L_cervical" in summary["not_assessable"]
    check_landmark_order(read_landmarks(out / LANDMARKS_FILE))
    canal_report = report["landmarks"]["L_carotid_canal"]
    assert canal_report["z_mm"] < float(z[first]) + 2.5  # placed at or below the scan's first slice


@pytest.mark.slow
def test_a_landmark_network_that_outputs_garbage_still_gives_ordered_landmarks_and_every_file(tmp_path):
    torch.manual_seed(3)
    net = DepthSequenceTransformer(2, (4, 8), dim=16, depth=1, heads=2, max_slices=320)
    for p in net.head.parameters():  # large random logits: confident, arbitrary, usually out of order
        torch.nn.init.normal_(p, std=5.0)
    cfg = {"name": "garbage-dst", "version": "0", "kind": "landmarks",
           "architecture": {"name": "DepthSequenceTransformer", "params": net.config},
           "input": {"fov_mm": 160.0, "size": 32}}
    model = save_model(tmp_path / "dst", net, cfg, "random weights")
    ph = _small_phantom(70302)
    ct = _write_ct(tmp_path / "ct.nii.gz", ph.ct)
    out = tmp_path / "out"
    assert main(["segment", str(ct), "-o", str(out), "--landmark-model", str(model), "--progress", "none",
                 "--device", "cpu"]) == 0
    assert all((out / f).is_file() for f in CONTRACT_FILES)
    check_landmark_order(read_landmarks(out / LANDMARKS_FILE))
    report = json.loads((out / REPORT_JSON).read_text())
    assert report["qc"]["status"] in ("ok", "review", "unusable")
    assert set(report["landmarks"]) == set(LANDMARKS)


def test_the_bone_prior_finds_the_landmarks_of_phantoms_within_a_few_mm():
    for seed in (70303, 70304):
        ph = _small_phantom(seed)
        head = analyse_head(ph.ct)
        prior = landmark_prior(ph.ct, midsagittal_plane(ph.ct, head=head), analysis=head)
        assert prior is not None
        for name in LANDMARKS:
            assert abs(prior.z_mm[name] - ph.landmarks[name].z_mm) < 8.0, (seed, name)


def _ellipse_volume(shape, spacing, radii_mm, fill_hu, extras=()) -> CTVolume:
    nk, nj, ni = shape
    grid = Grid(shape, spacing, (-(ni - 1) * spacing[0] / 2, -(nj - 1) * spacing[1] / 2, 0.0))
    y, x = np.meshgrid((np.arange(nj) - (nj - 1) / 2) * spacing[1], (np.arange(ni) - (ni - 1) / 2) * spacing[0],
                       indexing="ij")
    hu = np.full(shape, -1000.0, np.float32)
    inside = (x / radii_mm[0]) ** 2 + (y / radii_mm[1]) ** 2 <= 1
    hu[:, inside] = fill_hu
    for (cx, cy, r, value) in extras:
        hu[:, (x - cx) ** 2 + (y - cy) ** 2 <= r * r] = value
    return CTVolume(hu, grid, {"modality": "CT"})


def test_a_body_ct_is_refused_with_one_clear_line():
    body = _ellipse_volume((24, 128, 128), (3.2, 3.2, 5.0), (175.0, 120.0), 40.0,
                           extras=[(-80, -10, 55, -850.0), (80, -10, 55, -850.0), (0, 60, 18, 700.0)])
    with pytest.raises(InputError, match="body CT"):
        refuse_unprocessable(body, analyse_head(body))


@pytest.mark.parametrize("kind", ["air", "noise"])
def test_an_image_without_a_head_is_refused(kind, tmp_path, capsys):
    rng = np.random.default_rng(0)
    shape = (20, 64, 64)
    hu = np.full(shape, -1000.0, np.float32) if kind == "air" else rng.uniform(-1000, 1000, shape).astype(np.float32)
    hu[0, 0, 0] = -1000.0
    vol = CTVolume(hu, Grid(shape, (3.0, 3.0, 5.0), (0.0, 0.0, 0.0)), {})
    with pytest.raises(InputError, match="no head found"):
        refuse_unprocessable(vol, analyse_head(vol))
    ct = _write_ct(tmp_path / "x.nii.gz", vol)
    assert main(["segment", str(ct), "-o", str(tmp_path / "out"), "--progress", "none", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no head found" in err[0]
    assert not (tmp_path / "out").exists()


def test_slices_thicker_than_5_mm_are_flagged_for_review():
    vol = CTVolume(np.zeros((4, 4, 4), np.float32), Grid((4, 4, 4), (0.5, 0.5, 7.0), (0, 0, 0)),
                   {"slice_thickness_mm": 7.0})
    reason = thick_slices(vol)
    assert reason is not None and reason.severity == "review" and "7.0 mm" in reason.message
    vol.grid = Grid((4, 4, 4), (0.5, 0.5, 2.5), (0, 0, 0))
    vol.metadata["slice_thickness_mm"] = 2.5
    assert thick_slices(vol) is None


def _skull(vessels: bool) -> CTVolume:
    shape, spacing = (30, 96, 96), (2.0, 2.0, 2.5)
    nk, nj, ni = shape
    grid = Grid(shape, spacing, (-95.0, -95.0, 0.0))
    z, y, x = np.meshgrid(np.arange(nk) * 2.5 - 37.5, (np.arange(nj) - 47.5) * 2, (np.arange(ni) - 47.5) * 2,
                          indexing="ij")
    r = np.sqrt((x / 75) ** 2 + (y / 85) ** 2 + (z / 120) ** 2)
    hu = np.where(r < 1.0, 1200.0, -1000.0).astype(np.float32)
    hu[r < 0.92] = 35.0
    if vessels:  # enhanced arteries and veins: 6 tubes 4 mm wide along z ≈ 8 mL
        for cx, cy in ((-30, 10), (30, 10), (0, -40), (-20, 40), (20, 40), (0, 60)):
            hu[((x - cx) ** 2 + (y - cy) ** 2 <= 4.0 ** 2) & (r < 0.85)] = 300.0
    return CTVolume(hu, grid, {})


def test_contrast_enhanced_vessels_are_flagged_and_a_plain_head_is_not():
    plain, enhanced = _skull(False), _skull(True)
    assert contrast_enhanced(plain, analyse_head(plain), None) is None
    reason = contrast_enhanced(enhanced, analyse_head(enhanced), None)
    assert reason is not None and reason.code == "contrast_enhanced"


def test_report_volume_check_accepts_not_assessable_rows_and_still_catches_mismatches():
    from iacseg.outputs.writer import check_report_volumes

    grid = Grid((2, 2, 2), (1.0, 1.0, 1.0), (0, 0, 0))
    labels = np.zeros((2, 2, 2), np.uint8)
    labels[0, 0, 0] = 1
    segments = {n: {"volume_mm3": 0.0, "assessable": True} for n in SEGMENTS.values()}
    segments["L_cervical"] = {"volume_mm3": None, "assessable": False, "scanned_volume_mm3": 1.0}
    check_report_volumes(labels, grid, {"segments": segments, "total": {"volume_mm3": 1.0}})
    segments["L_cervical"]["scanned_volume_mm3"] = 0.0
    with pytest.raises(ValueError):
        check_report_volumes(labels, grid, {"segments": segments, "total": {"volume_mm3": 1.0}})


@pytest.mark.parametrize("family,truncate", [("soft", "bottom"), ("bone", "top")])
def test_the_bone_prior_limits_landmarks_that_a_partial_scan_does_not_reach(family, truncate):
    ph = make_phantom(70310 if truncate == "bottom" else 70311, family=family, truncate=truncate, matrix=256,
                      slice_mm=2.0)
    vol = ph.ct
    from iacseg.preprocess import to_axial_lps

    axial = vol if vol.grid.is_axial_lps() else to_axial_lps(vol)
    head = analyse_head(axial)
    prior = landmark_prior(axial, midsagittal_plane(axial, head=head), analysis=head)
    assert prior is not None
    if truncate == "top":  # the scan ends below the clinoids: the prior says they are above its top
        for side in "LR":
            low, high = prior.bounds[f"{side}_anterior_clinoid"]
            assert high is None and low <= ph.landmarks[f"{side}_anterior_clinoid"].z_mm + 2.0
    else:  # the scan starts inside the petrous bones: the canals are below its first slice
        first = ph.truth["coverage_z_mm"][0]
        for side in "LR":
            name = f"{side}_carotid_canal"
            assert ph.landmarks[name].z_mm < first
            if name in prior.bounds:
                assert prior.bounds[name][1] <= first + 2.5
            else:
                assert prior.z_mm[name] < first + 5.0


@pytest.mark.slow
def test_a_scan_of_the_brain_above_the_skull_base_is_unusable_with_every_segment_not_assessable(tmp_path):
    ph = _small_phantom(70305)
    g = ph.ct.grid
    z = g.origin[2] + np.arange(g.shape[0]) * g.spacing[2]
    top = max(ph.landmarks[f"{s}_anterior_clinoid"].z_mm for s in "LR")
    first = int(np.flatnonzero(z >= top + 25.0)[0])
    grid = Grid((g.shape[0] - first,) + g.shape[1:], g.spacing, (g.origin[0], g.origin[1], float(z[first])))
    ct = _write_ct(tmp_path / "brain.nii.gz", CTVolume(ph.ct.hu[first:].copy(), grid, {}))
    out = tmp_path / "out"
    assert main(["segment", str(ct), "-o", str(out), "--progress", "none", "--device", "cpu"]) == 0
    report = json.loads((out / REPORT_JSON).read_text())
    assert report["qc"]["status"] == "unusable"
    assert set(report["qc"]["not_assessable"]) == set(SEGMENTS.values())
    assert all(report["segments"][n]["volume_mm3"] is None for n in SEGMENTS.values())
    assert all(lm["z_mm"] < float(z[first]) for lm in report["landmarks"].values())
