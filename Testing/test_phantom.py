"""Synthetic phantom: deterministic, anatomically ordered, with truth that follows the project's conventions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from iacseg.core.contracts import CALCIUM_HU, LANDMARKS, SEGMENTS
from iacseg.phantom import make_phantom, write_phantom
from iacseg.phantom.anatomy import random_anatomy
from iacseg.phantom.plaques import sample_plaques

SMALL = dict(matrix=128, fov_mm=230.0, slice_mm=1.25, head_rest=False)


@pytest.fixture(scope="module")
def noise_free():
    return make_phantom(11, noise_hu=0.0, n_plaques=8, **SMALL)


def test_same_seed_same_arrays_and_truth():
    a = make_phantom(5, matrix=96, slice_mm=2.5)
    b = make_phantom(5, matrix=96, slice_mm=2.5)
    assert a.ct.hu.tobytes() == b.ct.hu.tobytes()
    assert a.labels.tobytes() == b.labels.tobytes()
    assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)
    c = make_phantom(6, matrix=96, slice_mm=2.5)
    assert c.ct.hu.tobytes() != a.ct.hu.tobytes()


def test_landmarks_ordered_per_side_and_inside_the_scan(noise_free):
    lm = noise_free.landmarks
    assert set(lm) == set(LANDMARKS)
    nk = noise_free.ct.shape[0]
    for side in "LR":
        z = [lm[f"{side}_{k}"].z_mm for k in ("carotid_canal", "petrolingual", "anterior_clinoid")]
        assert z[0] + 5 < z[1] < z[2] - 5
        canal = lm[f"{side}_carotid_canal"]
        assert canal.slice * noise_free.ct.spacing[2] >= 5.0      # neck below the canal is covered
        assert 0 < lm[f"{side}_anterior_clinoid"].slice < nk
        # slice convention: first slice at/above the plane
        z0, sk = noise_free.ct.grid.origin[2], noise_free.ct.spacing[2]
        assert z0 + (canal.slice - 1) * sk < canal.z_mm <= z0 + canal.slice * sk + 1e-6


def test_truth_labels_follow_the_mapping_rule(noise_free):
    labels, grid = noise_free.labels, noise_free.ct.grid
    kji = np.argwhere(labels > 0)
    assert len(kji) > 20
    world = grid.kji_to_world(kji)
    lm = noise_free.landmarks
    plane = noise_free.truth["midsagittal_plane"]
    left = (world - plane["point_lps_mm"]) @ np.asarray(plane["normal_lps"]) > 0
    for (k, j, i), p, is_left in zip(kji, world, left):
        side = SEGMENTS[int(labels[k, j, i])][0]
        assert side == ("L" if is_left else "R")
        h = [lm[f"{side}_{n}"].z_mm for n in ("carotid_canal", "petrolingual", "anterior_clinoid")]
        part = int(np.searchsorted(h, p[2], side="right"))
        assert SEGMENTS[int(labels[k, j, i])] == f"{side}_{('cervical', 'petrous', 'cavernous', 'supraclinoid')[part]}"


def test_truth_voxels_are_calcium_and_never_single(noise_free):
    mask = noise_free.labels > 0
    values = noise_free.ct.hu[mask]
    assert np.mean(values >= CALCIUM_HU) > 0.95
    assert values.min() > 60.0
    comp, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert np.bincount(comp.ravel())[1:].min() >= 2


def test_plaque_volumes_and_segments():
    plaques = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        plaques += sample_plaques(random_anatomy(rng), rng, 10)
    vols = np.array([p.volume_mm3 for p in plaques])
    assert vols.min() >= 0.5 and vols.max() <= 55.0
    frac = np.mean([p.part in ("cavernous", "supraclinoid") for p in plaques])
    assert 0.68 < frac < 0.82
    assert any(p.part == "petrous" for p in plaques) and any(p.part == "cervical" for p in plaques)


def test_truth_volumes_reasonable_at_thin_slices(noise_free):
    recs = noise_free.truth["plaques"]
    assert len(recs) == 8
    vols = [r["volume_mm3"] for r in recs]
    assert max(vols) < 120.0
    assert sum(v > 0 for v in vols) >= 4
    total = sum(noise_free.truth["segment_volumes_mm3"].values())
    assert total == pytest.approx(float((noise_free.labels > 0).sum()) * noise_free.ct.grid.voxel_volume_mm3)


def test_tilted_phantom_geometry():
    tilt = 15.0
    flat = make_phantom(21, noise_hu=0.0, n_plaques=4, **SMALL)
    tilted = make_phantom(21, noise_hu=0.0, n_plaques=4, tilt_deg=tilt, **SMALL)
    g = tilted.ct.grid
    t = np.radians(tilt)
    assert np.allclose(g.direction_matrix[:, 1], [0, np.cos(t), np.sin(t)])
    assert np.allclose(g.slice_normal, [0, -np.sin(t), np.cos(t)])
    assert g.spacing[2] == pytest.approx(1.25 * np.cos(t))
    st = tilted.dicom
    assert st is not None and st.slices_hu.shape == tilted.ct.shape
    assert np.allclose(st.positions[5] - st.positions[0], [0, 0, 5 * 1.25])
    assert st.gantry_tilt_deg == tilt
    # same anatomy: the biggest plaque's truth centroid sits at the same world point
    big = max(flat.truth["plaques"], key=lambda r: r["volume_mm3"])
    other = next(r for r in tilted.truth["plaques"] if r["id"] == big["id"])
    assert big["volume_mm3"] > 0 and other["truth_centroid_lps"] is not None
    assert np.linalg.norm(np.subtract(big["truth_centroid_lps"], other["truth_centroid_lps"])) < 1.0
    assert tilted.landmarks["L_carotid_canal"].z_mm == pytest.approx(flat.landmarks["L_carotid_canal"].z_mm)


def test_write_phantom_round_trips(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    from iacseg.outputs.markups import read_landmarks

    ph = make_phantom(3, matrix=64, slice_mm=3.0)
    case = write_phantom(ph, tmp_path / "phantom_00003")
    assert {p.name for p in case.iterdir()} == {"ct.nii.gz", "truth_calcifications.nii.gz",
                                                 "truth_landmarks.mrk.json", "truth.json"}
    img = sitk.ReadImage(str(case / "truth_calcifications.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(img), ph.labels)
    assert np.allclose(img.GetOrigin(), ph.ct.grid.origin, atol=1e-3)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "ct.nii.gz")))
    assert np.abs(ct - ph.ct.hu).max() <= 0.5 + 1e-3
    lm = read_landmarks(case / "truth_landmarks.mrk.json")
    assert lm["R_petrolingual"].z_mm == pytest.approx(ph.landmarks["R_petrolingual"].z_mm, abs=1e-4)
    truth = json.loads((case / "truth.json").read_text())
    assert truth["seed"] == 3 and "synthetic phantom" in truth["description"]


def test_write_tilted_dicom_series(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    ph = make_phantom(4, matrix=64, slice_mm=5.0, tilt_deg=12.0)
    case = write_phantom(ph, tmp_path / "phantom_00004", dicom=True)
    files = sorted((case / "dicom").iterdir())
    assert len(files) == ph.ct.shape[0]
    ds = pydicom.dcmread(files[0])
    assert np.allclose([float(v) for v in ds.ImageOrientationPatient][3:], [0, np.cos(np.radians(12)), np.sin(np.radians(12))], atol=1e-5)
    assert (case / "truth_calcifications.nii.gz").exists()
