"""Phantom families: classic unchanged bit for bit, randomised families deterministic, plausible, with exact
truth (plaque-only ≥ 130 HU, never on distractors), ordered landmarks, real truncation, and really different."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from iacseg.core.contracts import CALCIUM_HU, LANDMARK_KINDS
from iacseg.phantom import FAMILIES, RANDOMISED_FAMILIES, make_phantom, write_phantom
from iacseg.phantom.appearance import correlated_noise
from iacseg.phantom.style import draw_style, family_streams, resolve_family

SMALL = dict(matrix=64, slice_mm=4.0)
NEW_TRUTH_KEYS = ("coverage_z_mm", "family", "style", "truncate")

# sha256[:16] of the arrays/truth made by the generator BEFORE families existed (recorded on the unchanged code;
# the truth's first hashes, of unrounded floats, held only with OpenBLAS's SkylakeX kernel: under it the old and the
# rounded truth hashes were both checked, and the rounded ones are the same under the SkylakeX, Zen, Haswell and
# Sandybridge kernels)
CLASSIC_REFERENCE = {
    (7, (("matrix", 64), ("slice_mm", 3.0))): {
        "hu": "a99c326a4ccad891", "labels": "a8ca77532b338b5f", "truth": "e91e74dac9fd58ba"},
    (3, (("matrix", 80), ("n_plaques", 6), ("slice_mm", 2.0), ("tilt_deg", 10.0))): {
        "hu": "b39be4f714a65749", "labels": "e5833b0799bba6d9", "truth": "c5c7c7cc6c6bbf98",
        "dicom": "73ae927d557af0fd"},
}


def _h(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _rounded(value):
    """Floats to 9 significant digits: the truth's positions and volumes go through numpy's BLAS, whose kernel
    (chosen for the CPU: OPENBLAS_CORETYPE SkylakeX vs Zen) changes their last bits, never their digits."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _truth_hash(truth: dict) -> str:
    old = {k: v for k, v in truth.items() if k not in NEW_TRUTH_KEYS}
    return hashlib.sha256(json.dumps(_rounded(old), sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("family", [None, "classic"])
def test_classic_is_bit_for_bit_the_old_generator(family):
    for (seed, opts), ref in CLASSIC_REFERENCE.items():
        ph = make_phantom(seed, family=family, **dict(opts))
        got = {"hu": _h(ph.ct.hu), "labels": _h(ph.labels), "truth": _truth_hash(ph.truth)}
        if ph.dicom is not None:
            got["dicom"] = _h(ph.dicom.slices_hu)
        assert got == ref
        assert ph.truth["family"] == "classic" and len(ph.truth["coverage_z_mm"]) == 2


def test_family_names():
    assert FAMILIES == ("classic", "soft", "bone", "thick", "aged")
    assert RANDOMISED_FAMILIES == ("soft", "bone", "thick", "aged")
    picks = {resolve_family(s, "any") for s in range(40)}
    assert picks == set(RANDOMISED_FAMILIES)
    assert resolve_family(5, "any") == resolve_family(5, "any")
    with pytest.raises(ValueError):
        make_phantom(1, family="cartoon", **SMALL)
    with pytest.raises(ValueError):
        make_phantom(1, family="soft", truncate="middle", **SMALL)


@pytest.fixture(scope="module")
def small_family_phantoms():
    return {f: make_phantom(3, family=f, **SMALL) for f in RANDOMISED_FAMILIES}


@pytest.mark.parametrize("family", RANDOMISED_FAMILIES)
def test_family_is_deterministic(family, small_family_phantoms):
    a = small_family_phantoms[family]
    b = make_phantom(3, family=family, **SMALL)
    assert a.ct.hu.tobytes() == b.ct.hu.tobytes()
    assert a.labels.tobytes() == b.labels.tobytes()
    assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)
    assert a.truth["family"] == family and isinstance(a.truth["style"], dict)
    c = make_phantom(4, family=family, **SMALL)
    assert c.ct.hu.tobytes() != a.ct.hu.tobytes()


def test_any_is_one_randomised_family():
    seed = 8
    fam = resolve_family(seed, "any")
    a = make_phantom(seed, family="any", **SMALL)
    b = make_phantom(seed, family=fam, **SMALL)
    assert a.truth["family"] == fam
    assert a.ct.hu.tobytes() == b.ct.hu.tobytes()


def _head_point(ph, p_head) -> np.ndarray:
    pose = ph.truth["pose"]
    return np.asarray(pose["rotation"]) @ np.asarray(p_head, float) + np.asarray(pose["translation_mm"])


@pytest.mark.parametrize("family", RANDOMISED_FAMILIES)
def test_family_hu_is_plausible_head_ct(family, small_family_phantoms):
    ph = small_family_phantoms[family]
    hu = ph.ct.hu
    assert hu.dtype == np.float32 and np.isfinite(hu).all()
    assert hu.min() >= -1024.0 and hu.max() <= 3071.0
    assert np.mean(hu < -900) > 0.2                                   # air around the head
    assert np.mean(hu > 700) > 0.005                                  # bone
    soft = np.mean((hu > -150) & (hu < 120))
    assert soft > 0.15
    # brain: white/grey matter lateral to the midline, well above the clinoids
    lm = ph.landmarks
    z_ac = max(lm["L_anterior_clinoid"].z_mm, lm["R_anterior_clinoid"].z_mm)
    p = _head_point(ph, (25.0, -10.0, 0.0))
    p[2] = z_ac + 40.0
    ijk = np.round(ph.ct.grid.world_to_index(p)).astype(int)
    box = hu[max(ijk[2] - 1, 0):ijk[2] + 2, ijk[1] - 3:ijk[1] + 4, ijk[0] - 3:ijk[0] + 4]
    assert 5.0 < float(np.median(box)) < 60.0


@pytest.mark.parametrize("family", RANDOMISED_FAMILIES)
def test_landmarks_ordered_and_labels_follow_the_rule(family, small_family_phantoms):
    ph = small_family_phantoms[family]
    lm = ph.landmarks
    for s in "LR":
        z = [lm[f"{s}_{k}"].z_mm for k in LANDMARK_KINDS]
        assert z[0] + 5 < z[1] < z[2] - 5
    kji = np.argwhere(ph.labels > 0)
    world = ph.ct.grid.kji_to_world(kji)
    for (k, j, i), p in zip(kji, world):
        v = int(ph.labels[k, j, i])
        side = "L" if v <= 4 else "R"
        h = [lm[f"{side}_{n}"].z_mm for n in LANDMARK_KINDS]
        assert (v - 1) % 4 == int(np.searchsorted(h, p[2], side="right"))


def _capsule_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-9), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


@pytest.fixture(scope="module")
def aged_noise_free():
    return make_phantom(2, family="aged", matrix=192, fov_mm=230.0, slice_mm=1.0, noise_hu=0.0, n_plaques=10)


def test_truth_is_the_plaque_only_render_and_never_a_distractor(aged_noise_free):
    ph = aged_noise_free
    labels = ph.labels.reshape(-1)
    aux = ph.aux
    plaque_hu = np.full(labels.shape, aux["blood_hu"], np.float32)
    plaque_hu[aux["plaque_only_index"]] = aux["plaque_only_hu"]
    on = labels > 0
    assert on.sum() > 20
    assert (plaque_hu[on] >= CALCIUM_HU - 1e-3).all()                 # truth ⊂ plaque-only ≥ 130 HU
    calcium = plaque_hu >= CALCIUM_HU
    assert on.sum() >= 0.9 * calcium.sum()                            # only single voxels are dropped
    # distractors exist, are bright in the image, and no label touches one
    ds = ph.truth["distractors"]
    assert len(ds) >= 4
    kji = np.argwhere(ph.labels > 0)
    world = ph.ct.grid.kji_to_world(kji)
    bright = 0
    for d in ds:
        a, b = np.asarray(d["a_lps"]), np.asarray(d["b_lps"])
        assert _capsule_distance(world, a, b).min() > d["radius_mm"] + 0.5
        ijk = np.round(ph.ct.grid.world_to_index(0.5 * (a + b))).astype(int)
        if all(0 <= ijk[n] < ph.ct.shape[2 - n] for n in range(3)):
            patch = ph.ct.hu[max(ijk[2] - 1, 0):ijk[2] + 2, ijk[1] - 2:ijk[1] + 3, ijk[0] - 2:ijk[0] + 3]
            bright += patch.size > 0 and float(patch.max()) > 110.0
    assert bright >= 2
    assert "distractor" in ph.truth["truth_convention"] and "kernel" in ph.truth["truth_convention"]


def test_kernel_applies_to_truth_too():
    soft = make_phantom(5, family="soft", matrix=128, slice_mm=1.25, noise_hu=0.0, n_plaques=8)
    aux = soft.aux
    assert soft.truth["kernel"]["type"] == "soft"
    flat = np.zeros(soft.labels.size, np.float32)
    flat[aux["plaque_only_index"]] = aux["plaque_only_hu"] - aux["blood_hu"]
    # a blurred plaque-only render spreads beyond the labelled voxels but its labelled part is ≥ 130 HU
    on = soft.labels.reshape(-1) > 0
    assert (flat[on] + aux["blood_hu"] >= CALCIUM_HU - 1e-3).all()
    assert (flat > 1.0).sum() > on.sum()


def _z_first_last(ph, p) -> tuple[float, float]:
    """Heights of the first and last slice planes at the (x, y) of world point ``p``."""
    g = ph.ct.grid
    n, sk = g.slice_normal, g.spacing[2]
    kp = g.world_to_index(np.asarray(p))[2]
    return p[2] - kp * sk / n[2], p[2] + (g.shape[0] - 1 - kp) * sk / n[2]


@pytest.mark.parametrize("family,seed,tilt", [("classic", 2, None), ("soft", 1, None), ("thick", 4, None),
                                              ("aged", 0, None), ("bone", 3, 15.0)])
def test_truncate_leaves_the_segments_out(family, seed, tilt):
    opts = dict(matrix=48, noise_hu=0.0) if tilt is None else dict(matrix=48, noise_hu=0.0, tilt_deg=tilt)
    bottom = make_phantom(seed, family=family, truncate="bottom", **opts)
    top = make_phantom(seed, family=family, truncate="top", **opts)
    lm = bottom.landmarks
    for s in "LR":
        canal, pl, ac = (lm[f"{s}_{k}"] for k in LANDMARK_KINDS)
        assert _z_first_last(bottom, canal.position)[0] >= canal.z_mm + 2.0 - 1e-6
        assert _z_first_last(bottom, pl.position)[0] <= pl.z_mm - 2.0 + 1e-6
        assert _z_first_last(top, pl.position)[1] >= pl.z_mm + 2.0 - 1e-6
        assert _z_first_last(top, ac.position)[1] <= ac.z_mm - 2.0 + 1e-6
    assert not set(np.unique(bottom.labels)) & {1, 5}           # no cervical calcium can be labelled
    assert not set(np.unique(top.labels)) & {4, 8}              # no supraclinoid either
    if not bottom.truth["gantry_tilt_deg"] and not bottom.truth.get("oblique_reformat_deg"):
        z0, z1 = bottom.truth["coverage_z_mm"]
        canal_hi = max(lm["L_carotid_canal"].z_mm, lm["R_carotid_canal"].z_mm)
        pl_lo = min(lm["L_petrolingual"].z_mm, lm["R_petrolingual"].z_mm)
        assert canal_hi + 2 - 1e-6 <= z0 <= pl_lo - 2 + 1e-6 and z1 > z0
        assert z0 == pytest.approx(bottom.ct.grid.origin[2], abs=1e-6)
        zt = top.truth["coverage_z_mm"][1]
        ac_lo = min(lm["L_anterior_clinoid"].z_mm, lm["R_anterior_clinoid"].z_mm)
        pl_hi = max(lm["L_petrolingual"].z_mm, lm["R_petrolingual"].z_mm)
        assert pl_hi + 2 - 1e-6 <= zt <= ac_lo - 2 + 1e-6


def test_full_coverage_scans_every_landmark(small_family_phantoms):
    for ph in small_family_phantoms.values():
        z0, z1 = ph.truth["coverage_z_mm"]
        for name, m in ph.landmarks.items():
            lo, hi = _z_first_last(ph, m.position)
            assert lo < m.z_mm < hi, name


def test_families_really_differ():
    draws = {f: [draw_style(f, family_streams(s, f, 7)[0]) for s in range(60)] for f in RANDOMISED_FAMILIES}
    thick = {f: np.array([d["acquisition"]["slice_mm"] for d in v]) for f, v in draws.items()}
    noise = {f: np.array([d["noise"]["hu"] for d in v]) for f, v in draws.items()}
    assert thick["soft"].max() <= 1.5 and thick["thick"].min() >= 3.0 and thick["bone"].max() <= 2.5
    assert noise["bone"].min() >= 15.0 and noise["soft"].max() <= 8.0
    assert np.mean([d["anatomy"]["atrophy"] for d in draws["aged"]]) > 0.6 > \
        np.mean([d["anatomy"]["atrophy"] for d in draws["soft"]])
    assert np.mean([d["artefacts"]["dental_metal"] for d in draws["bone"]]) > 0.5
    assert np.mean([d["acquisition"]["tilt_deg"] > 0 for d in draws["thick"]]) > 0.4
    assert np.mean([d["acquisition"]["oblique_deg"] > 0 for d in draws["aged"]]) > 0.4
    assert np.mean([d["acquisition"]["uneven"] for d in draws["thick"]]) > 0.3
    assert min(min(d["acquisition"]["matrix"] for d in v) for v in draws.values()) == 256
    assert max(max(d["acquisition"]["matrix"] for d in v) for v in draws.values()) == 768

    # noise power spectra: the soft kernel's noise is blotchy (low frequencies), the bone kernel's fine
    def centroid(family: str) -> float:
        d = draws[family][0]["noise"]
        nz = correlated_noise((4, 128, 128), 10.0, 0.45, d["peak_cyc_mm"], d["lowfreq"], np.random.default_rng(0))
        assert nz.std() == pytest.approx(10.0, rel=0.1)
        p = np.abs(np.fft.rfft2(nz, axes=(1, 2))) ** 2
        f = np.hypot(np.fft.fftfreq(128, 0.45)[:, None], np.fft.rfftfreq(128, 0.45)[None, :])
        return float((p.mean(0) * f).sum() / p.mean(0).sum())

    c = {f: centroid(f) for f in RANDOMISED_FAMILIES}
    assert c["soft"] < c["thick"] < c["bone"] and c["soft"] < c["aged"] < c["bone"]


def test_noise_in_images_differs_between_soft_and_bone():
    def hf_ratio(family: str) -> float:
        kw = dict(matrix=96, fov_mm=220.0, slice_mm=3.0, n_plaques=2)
        noisy = make_phantom(6, family=family, **kw).ct.hu
        clean = make_phantom(6, family=family, noise_hu=0.0, **kw).ct.hu
        nz = (noisy - clean)[:, 20:76, 20:76]
        lap = nz[:, 1:-1, 1:-1] * 4 - nz[:, :-2, 1:-1] - nz[:, 2:, 1:-1] - nz[:, 1:-1, :-2] - nz[:, 1:-1, 2:]
        return float(lap.std() / nz.std())

    assert hf_ratio("bone") > 1.3 * hf_ratio("soft")


def test_uneven_dicom_reads_back_on_the_truth_grid(tmp_path):
    pytest.importorskip("pydicom")
    from iacseg.io import read_ct

    ph = make_phantom(0, family="thick", matrix=48)
    missing = ph.truth["dicom_missing_slices"]
    assert missing and ph.dicom is not None
    case = write_phantom(ph, tmp_path / "case", dicom=True)
    files = list((case / "dicom").iterdir())
    assert len(files) == ph.ct.shape[0] - len(missing)
    vol = read_ct(case / "dicom", allow_gaps=True)  # missing slices are refused unless gaps are allowed
    assert vol.shape == ph.ct.shape
    assert np.allclose(vol.grid.origin, ph.ct.grid.origin, atol=1e-3)
    assert np.allclose(vol.grid.spacing, ph.ct.grid.spacing, atol=1e-4)
    keep = np.setdiff1d(np.arange(ph.ct.shape[0]), missing)
    inside = ph.ct.hu[keep] != -1000.0                      # outside the FOV is written as padding
    assert np.abs(vol.hu[keep] - ph.ct.hu[keep])[inside].max() <= 0.5 + 1e-3
    assert any("uneven" in c for c in vol.metadata["corrections"])


def test_oblique_reformat_grid():
    ph = make_phantom(0, family="aged", matrix=48)
    ang = ph.truth["oblique_reformat_deg"]
    assert 2.0 <= ang <= 8.0
    d = ph.ct.grid.direction_matrix
    assert np.allclose(d.T @ d, np.eye(3), atol=1e-9)
    assert np.degrees(np.arccos(d[2, 2])) == pytest.approx(ang, abs=1e-6)
    for name, m in ph.landmarks.items():      # slice convention: first slice at/above the plane at the point
        lo, _ = _z_first_last(ph, m.position)
        step = ph.ct.grid.spacing[2] / d[2, 2]
        assert lo + (m.slice - 1) * step < m.z_mm <= lo + m.slice * step + 1e-6


def test_explicit_options_override_the_family():
    ph = make_phantom(1, family="thick", matrix=40, slice_mm=2.0, tilt_deg=0.0, noise_hu=0.0, n_plaques=3,
                      head_rest=False, coverage_mm=100.0)
    t = ph.truth
    assert ph.ct.shape[1:] == (40, 40) and t["slice_thickness_mm"] == 2.0 and t["gantry_tilt_deg"] == 0.0
    assert t["noise_hu"] == 0.0 and len(t["plaques"]) == 3 and t["head_holder"] == "none"
    assert ph.ct.shape[0] == 51


def test_cli_lists_families_and_makes_one(tmp_path, capsys):
    from iacseg.cli.main import main

    with pytest.raises(SystemExit):
        main(["phantom", "--help"])
    out = capsys.readouterr().out
    assert all(f in out for f in FAMILIES) and "--truncate" in out
    assert main(["phantom", "-o", str(tmp_path), "--seed", "3", "--family", "soft", "--truncate", "bottom",
                 "--matrix", "32", "--slice-mm", "5", "--progress", "none"]) == 0
    truth = json.loads((tmp_path / "phantom_00003" / "truth.json").read_text())
    assert truth["family"] == "soft" and truth["truncate"] == "bottom" and len(truth["coverage_z_mm"]) == 2
