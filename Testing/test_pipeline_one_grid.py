"""A tilted or oblique CT costs about what an axial one does: the probability is resampled onto the CT grid only in
the box that the ICA region reaches (`pipeline.probability_in_ct_box`, `preprocess.resample_box`), and
`resample_to_grid` computes only the rectangle of each chunk that the source reaches. Both must give exactly what
the former full-volume path gave: same probability voxel for voxel, same labels and landmarks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import iacseg.pipeline as pipeline
import iacseg.preprocess as preprocess
import iacseg.preprocess.orient as orient
from iacseg.core.grid import Grid
from iacseg.phantom.generate import make_phantom
from iacseg.preprocess import axial_grid_covering, resample_box, resample_to_grid


def reference_resample_to_grid(array, src, dst, *, order=1, fill=0.0, device=None):
    """The former `resample_to_grid`, verbatim: every destination voxel through grid_sample, slice chunk by chunk."""
    if src.same_geometry(dst):
        return np.array(array, copy=True) if order == 0 else np.asarray(array, dtype=np.float32).copy()
    dev = torch.device("cpu") if device is None else torch.device(device)
    out_dtype = array.dtype if order == 0 else np.float32
    a, b = orient._index_map(src, dst)
    a_t = torch.as_tensor(a, dtype=torch.float32, device=dev)
    b_t = torch.as_tensor(b, dtype=torch.float32, device=dev)
    nk, nj, ni = src.shape
    source = (torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=dev) - float(fill))[None, None]
    mk, mj, mi = dst.shape
    rows_per_chunk = max(1, orient.CHUNK_VOXELS // max(1, mj * mi))
    jj, ii = torch.meshgrid(torch.arange(mj, device=dev, dtype=torch.float32),
                            torch.arange(mi, device=dev, dtype=torch.float32), indexing="ij")
    out = np.empty(dst.shape, dtype=out_dtype)
    mode = "nearest" if order == 0 else "bilinear"
    for k0 in range(0, mk, rows_per_chunk):
        k1 = min(mk, k0 + rows_per_chunk)
        kk = torch.arange(k0, k1, device=dev, dtype=torch.float32)[:, None, None].expand(-1, mj, mi)
        dst_index = torch.stack([ii.expand_as(kk), jj.expand_as(kk), kk], dim=-1)
        src_index = dst_index @ a_t.T + b_t
        coords = torch.stack([orient._normalise(src_index[..., 0], ni), orient._normalise(src_index[..., 1], nj),
                              orient._normalise(src_index[..., 2], nk)], dim=-1)
        values = F.grid_sample(source, coords[None], mode=mode, padding_mode="zeros", align_corners=True)
        values = (values[0, 0] + float(fill)).cpu().numpy()
        if order == 0 and np.issubdtype(out_dtype, np.integer):
            values = np.rint(values)
        out[k0:k1] = values.astype(out_dtype, copy=False)
    return out


def _rotation(rng: np.random.Generator, sigma_deg: float) -> np.ndarray:
    ax, ay, az = np.radians(rng.normal(0.0, sigma_deg, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def test_resampling_only_where_the_source_reaches_is_exact():
    rng = np.random.default_rng(14)
    for trial in range(40):
        shape = tuple(int(n) for n in rng.integers(1, 30, 3))
        src = Grid(shape, tuple(rng.uniform(0.4, 2.0, 3)), tuple(rng.normal(0, 5, 3)),
                   tuple(_rotation(rng, 20.0).ravel()))
        dst = axial_grid_covering(src) if trial % 2 else Grid(
            tuple(int(n) for n in rng.integers(1, 40, 3)), tuple(rng.uniform(0.4, 2.0, 3)), tuple(rng.normal(0, 5, 3)))
        hu = rng.normal(0, 300, shape).astype(np.float32)
        labels = rng.integers(0, 9, shape).astype(np.uint8)
        for array, order, fill in ((hu, 1, -1024.0), (hu, 1, 0.0), (labels, 0, 0.0)):
            new = resample_to_grid(array, src, dst, order=order, fill=fill, device="cpu")
            old = reference_resample_to_grid(array, src, dst, order=order, fill=fill)
            assert new.dtype == old.dtype and np.array_equal(new, old), (trial, order, fill)
        # a probability map that is 0 outside a box: only the destination box it reaches is computed
        support = tuple(slice(int(lo), int(lo) + int(rng.integers(1, n - lo + 1)))
                        for n in shape for lo in [rng.integers(0, n)])
        prob = np.zeros(shape, np.float32)
        prob[support] = rng.random(prob[support].shape)
        box, values = resample_box(prob, src, dst, order=1, fill=0.0, support=support, device="cpu")
        full = np.zeros(dst.shape, np.float32)
        full[box] = values
        assert np.array_equal(full, reference_resample_to_grid(prob, src, dst, order=1, fill=0.0)), trial


def _old_full_volume_path(monkeypatch):
    """Make `segment_volume` run the former path: full-volume resampling of HU and probability, and the calcium
    mask on the whole CT grid."""
    monkeypatch.setattr(orient, "resample_to_grid", reference_resample_to_grid)
    monkeypatch.setattr(preprocess, "resample_to_grid", reference_resample_to_grid)

    def whole_volume(prob_axial, roi, axial, ct, device=None):
        prob_ct = reference_resample_to_grid(prob_axial, axial, ct, order=1, fill=0.0,
                                             device=device).astype(np.float32)
        return tuple(slice(0, n) for n in ct.shape), prob_ct

    monkeypatch.setattr(pipeline, "probability_in_ct_box", whole_volume)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tilted", "oblique"])
def test_tilted_and_oblique_ct_give_the_labels_of_the_full_volume_path(kind, monkeypatch):
    if kind == "tilted":
        ph = make_phantom(70102, slice_mm=2.5, tilt_deg=18.0, matrix=160)
    else:
        ph = make_phantom(0, family="aged", matrix=160)
        assert ph.truth["oblique_reformat_deg"] > 0
    vol = ph.ct
    assert vol.grid.obliquity_deg() > 1.0
    options = pipeline.SegmentOptions(device="cpu", keep_probability=True)
    labels, landmarks, plane, info = pipeline.segment_volume(vol, options)
    with monkeypatch.context() as m:
        _old_full_volume_path(m)
        old_labels, old_landmarks, old_plane, old_info = pipeline.segment_volume(vol, options)
    assert (labels > 0).sum() > 0, "the phantom should have calcium for the comparison to mean something"
    assert np.array_equal(labels, old_labels)
    assert np.array_equal(info["probability"], old_info["probability"])
    assert {k: v.z_mm for k, v in landmarks.items()} == {k: v.z_mm for k, v in old_landmarks.items()}
    assert info["outside_ica_voxels"] == old_info["outside_ica_voxels"]
    assert info["roi_kji"] == old_info["roi_kji"]
