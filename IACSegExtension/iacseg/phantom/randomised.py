"""One phantom of a randomised family: style → anatomy → plaques, distractors → scan plan → render →
reconstruction (kernel, streaks, correlated noise) → exact truth. Called by `generate.make_phantom`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.contracts import LANDMARK_KINDS, LANDMARKS
from ..io.volume import CTVolume
from ..core.landmarks import Landmark
from ..core.progress import Progress, no_progress
from . import appearance as A
from .anatomy import crossing_point, random_anatomy
from .case import Phantom, plaque_only, truth_document
from .dicom_stack import DicomStack
from .distractors import (distractor_layers, distractor_records, sample_distractors, vertebrobasilar,
                          vessel_layers)
from .holders import holder_layers
from .jaw import jaw_layers
from .layers import _flexion_shift, build_layers
from .plaques import sample_plaques
from .render import PlaneStack, Renderer, fov_outside_mask
from .scan_plan import build_acquisition, height_at, plan_z, slice_normal
from .style import MAX_VOXELS, draw_style, family_streams, kernel_of
from .truth import spread_plaque_ids, truth_labels
from .vessels import ArteryRenderer
from .warp import SmoothWarp

TRUTH_CONVENTION = ("plaque-only noise-free rendering (partial volume + slice profile) passed through the same "
                    "in-plane reconstruction kernel as the image (family style 'kernel'), >= 130 HU, 26-connected "
                    "single voxels removed; noise, beam-hardening/metal streaks and cupping are not part of it; "
                    "label = side x height vs true landmarks; distractor calcifications are never labelled")


def _acquisition_choices(style: dict, seed_opts: dict) -> dict[str, Any]:
    """Slice thickness/spacing, matrix, FOV, tilt, oblique, holder after the caller's explicit options."""
    a = style["acquisition"]
    o = seed_opts
    thick = float(o["slice_mm"]) if o["slice_mm"] is not None else float(a["slice_mm"])
    spacing = thick if (o["slice_mm"] is not None or not a["overlap"]) else 0.5 * thick
    tilt = float(o["tilt_deg"]) if o["tilt_deg"] is not None else float(a["tilt_deg"])
    oblique = float(a["oblique_deg"]) if (o["tilt_deg"] is None and tilt == 0.0) else 0.0
    holder = a["holder"]
    if o["head_rest"] is not None:
        holder = ("cradle" if holder == "none" else holder) if o["head_rest"] else "none"
    return {"thickness_mm": thick, "spacing_mm": spacing, "tilt_deg": tilt, "oblique_deg": oblique,
            "oblique_axis_deg": float(a["oblique_axis_deg"]), "holder": holder,
            "fov_mm": float(o["fov_mm"]) if o["fov_mm"] is not None else float(a["fov_mm"]),
            "coverage_mm": float(o["coverage_mm"]) if o["coverage_mm"] is not None else float(a["coverage_mm"]),
            "noise_hu": float(o["noise_hu"]) if o["noise_hu"] is not None else float(style["noise"]["hu"]),
            "matrix_explicit": o["matrix"] is not None,
            "matrix": int(o["matrix"]) if o["matrix"] is not None else int(a["matrix"])}


def _fit_matrix(im: dict, n_slices: int) -> int:
    """The drawn matrix, lowered to 512 (then 384) when the volume would exceed `MAX_VOXELS`."""
    m = im["matrix"]
    if im["matrix_explicit"]:
        return m
    for cand in (m, 512, 384, 256):
        if cand <= m and cand * cand * n_slices <= MAX_VOXELS:
            return cand
    return 256


def _reconstruct(hu: np.ndarray, st: PlaneStack, style: dict, im: dict, outside: np.ndarray,
                 rng_noise: np.random.Generator, rng_art: np.random.Generator, fields=None):
    """Kernel, streaks/cupping/metal and correlated noise applied to a rendered stack. Returns the image and
    the (artefact, noise amplitude) fields, which ``fields`` can pass in precomputed."""
    k = kernel_of(style)
    spacing = float(np.linalg.norm(st.origins[1] - st.origins[0])) if st.nk > 1 else st.thickness
    art = dict(style["artefacts"], attenuation=style["noise"]["attenuation"])
    add, amp = fields if fields is not None else A.streak_artefacts(hu, st.dx, spacing, art, rng_art)
    out = A.kernel_filter(hu, k, st.dx)
    out += add
    if im["noise_hu"] > 0:
        nz = A.correlated_noise(out.shape, im["noise_hu"], st.dx, style["noise"]["peak_cyc_mm"],
                                style["noise"]["lowfreq"], rng_noise)
        out += nz * amp
    return A.finish(out, outside), (add, amp)


def _to_sheared(vol: np.ndarray, st_grid: PlaneStack, st_dicom: PlaneStack, fill: float) -> np.ndarray:
    """A tilt-corrected stack moved onto the sheared DICOM slices: slice k of both is the same plane, the DICOM
    pixel grid sits ``k·Δz·sin t`` mm further along ``col`` (linear interpolation along the rows)."""
    from scipy import ndimage

    out = np.empty_like(vol)
    for k in range(vol.shape[0]):
        shift_mm = float((st_dicom.origins[k] - st_grid.origins[k]) @ st_grid.col)
        out[k] = ndimage.shift(vol[k], (-shift_mm / st_grid.dy, 0.0), order=1, mode="constant", cval=fill,
                               prefilter=False)
    return out


def make_family_phantom(seed: int, family: str, truncate: str | None, opts: dict,
                        progress: Progress = no_progress):

    r_style, r_anat, r_plaq, r_dis, r_noise, r_art, r_jaw = family_streams(seed, family, 7)
    style = draw_style(family, r_style)
    im = _acquisition_choices(style, opts)
    anat = random_anatomy(r_anat, {"anatomy": style["anatomy"], "tissue": style["tissue"]})
    tis = anat.variant["tissue"]
    n_plaques = int(opts["n_plaques"]) if opts["n_plaques"] is not None else int(style["plaques"]["n"])
    plaques = sample_plaques(anat, r_plaq, n_plaques, tuple(style["plaques"]["volume_mm3"]),
                             float(style["plaques"]["hu_power"]))
    pose = anat.pose
    points = {f"{s}_{k}": pose.to_world(crossing_point(anat.centrelines[s], h))
              for s in ("L", "R") for k, h in anat.side_heights(s).items()}

    # --- scan plan ----------------------------------------------------------------------------------------
    a = style["acquisition"]
    normal = slice_normal(im["tilt_deg"], im["oblique_deg"], im["oblique_axis_deg"])
    vz = im["spacing_mm"] if im["tilt_deg"] else im["spacing_mm"] / float(normal[2])
    short = (a["short_margin_mm"], a["short_above_mm"]) if (a["short"] and truncate is None
                                                           and opts["coverage_mm"] is None) else None
    plan = plan_z(points, normal, vz, im["coverage_mm"], float(a["margin_mm"]), truncate, float(a["truncate_at"]),
                  short)
    im["matrix"] = _fit_matrix(im, plan.n_slices)
    acq = build_acquisition(im["matrix"], im["fov_mm"], plan, im["spacing_mm"], im["thickness_mm"], im["tilt_deg"],
                            im["oblique_deg"], im["oblique_axis_deg"])

    # --- scene ----------------------------------------------------------------------------------------------
    va = anat.variant["anatomy"]
    sl, sr = anat.sides["L"], anat.sides["R"]
    zc = 0.5 * (sl.z_canal + sr.z_canal)
    pdy, pdz = _flexion_shift(va, zc, 0.5 * (sl.z_cavernous + sr.z_cavernous))
    lines = vertebrobasilar(anat, (46.0 + pdy, zc + pdz, 31.0 + pdy))
    dist = sample_distractors(anat, r_dis, int(style["distractors"]["n"]), bool(style["distractors"]["near_ica_p"]),
                              lines)
    metal = ({"n_fillings": style["artefacts"]["n_fillings"], "metal_hu": style["artefacts"]["metal_hu"]}
             if style["artefacts"]["dental_metal"] else None)
    jaw, fillings = jaw_layers(anat, tis, metal, r_jaw)
    base = build_layers(anat, None)
    at = next(n for n, layer in enumerate(base) if layer.name == "pharynx")
    hold = dict(a, holder=im["holder"])
    layers = (holder_layers(anat, hold) + base[:at] + jaw + base[at:] + vessel_layers(lines, tis["blood"])
              + distractor_layers(dist))
    art_tissue = {"fat": tis["fat"], "blood": tis["blood"], "wall": tis["blood"] + 5.0, "canal": tis["blood"]}
    arteries = [ArteryRenderer(anat.centrelines[s], [p for p in plaques if p.side == s], pose, anat.sides[s].z_canal,
                               tissue=art_tissue) for s in ("L", "R")]
    warp = SmoothWarp(anat, style["anatomy"]["warp_waves"])
    renderer = Renderer(layers, arteries, pose, warp=warp)
    for d in dist:                     # where the warped distractors are really rendered
        d["a"], d["b"] = warp.inverse(d["a"]), warp.inverse(d["b"])
    for f in fillings:
        f["centre_head"] = [float(v) for v in warp.inverse(np.array(f["centre_head"]))]

    # --- render + reconstruct -------------------------------------------------------------------------------
    hu, excess, pid = renderer.render(acq.grid_stack, progress, f"phantom ({family})")
    outside = fov_outside_mask(acq.grid_stack)
    kern = kernel_of(style)
    excess = A.kernel_filter_sparse(excess, kern, acq.grid_stack.dx)
    pid = spread_plaque_ids(excess, pid, tis["blood"])
    clean = hu if acq.dicom_stack is not None else None
    hu, fields = _reconstruct(hu, acq.grid_stack, style, im, outside, r_noise, r_art)
    heights = {s: {k: float(points[f"{s}_{k}"][2]) for k in LANDMARK_KINDS} for s in ("L", "R")}
    labels = truth_labels(excess, pid, plaques, acq.grid, heights, blood_hu=tis["blood"])
    landmarks = {name: Landmark(name, float(points[name][2]), tuple(float(v) for v in points[name]),
                                slice=float(acq.landmark_slice(points[name])), confidence=1.0) for name in LANDMARKS}
    padding = -2000 if a["padding"] else None
    dicom = None
    missing: list[int] = []
    if acq.dicom_stack is not None:
        st = acq.dicom_stack
        dhu = _to_sheared(clean, acq.grid_stack, st, -1000.0)
        dfields = tuple(_to_sheared(f, acq.grid_stack, st, 0.0 if n == 0 else 1.0) for n, f in enumerate(fields))
        dout = fov_outside_mask(st)
        dhu, _ = _reconstruct(dhu, st, style, im, dout, r_noise, r_art, dfields)
        dicom = DicomStack(dhu, st.origins.copy(), tuple(st.row), tuple(st.col), (st.dy, st.dx), im["thickness_mm"],
                           float(im["tilt_deg"]), padding_value=padding, padding_mask=dout if padding else None,
                           shuffle_seed=int(a["seed"]) if "seed" in a else int(seed) + 7, uid_seed=int(seed),
                           kernel=kern["name"])
    if a["uneven"] and acq.grid.shape[0] > 6:
        if dicom is None:
            g = acq.grid
            dirs = g.direction_matrix
            k = np.arange(g.shape[0])[:, None]
            dicom = DicomStack(hu, np.asarray(g.origin) + k * g.spacing[2] * dirs[:, 2], tuple(dirs[:, 0]),
                               tuple(dirs[:, 1]), (g.spacing[1], g.spacing[0]), im["thickness_mm"], 0.0,
                               padding_value=padding, padding_mask=outside if padding else None,
                               shuffle_seed=int(seed) + 7, uid_seed=int(seed), kernel=kern["name"])
        nk = dicom.slices_hu.shape[0]
        first = int(np.clip(round(a["missing_at"] * nk), 2, nk - 2 - a["missing_slices"]))
        missing = list(range(first, first + int(a["missing_slices"])))
        keep = np.setdiff1d(np.arange(nk), missing)
        dicom.slices_hu = dicom.slices_hu[keep]
        dicom.positions = dicom.positions[keep]
        if dicom.padding_mask is not None:
            dicom.padding_mask = dicom.padding_mask[keep]
    metadata = {"modality": "CT", "source_format": "phantom", "series_uid": None,
                "slice_thickness_mm": im["thickness_mm"], "gantry_tilt_deg": float(im["tilt_deg"]),
                "kernel": kern["name"], "manufacturer": "IACSeg phantom", "corrections": [], "warnings": [],
                "phantom_seed": int(seed), "phantom_family": family}
    ct = CTVolume(hu, acq.grid, metadata)

    opts_rec = {"thickness_mm": im["thickness_mm"], "spacing_mm": im["spacing_mm"], "fov_mm": im["fov_mm"],
                "matrix": im["matrix"], "noise_hu": im["noise_hu"], "head_rest": im["holder"] != "none",
                "n_plaques": n_plaques, "coverage_mm": im["coverage_mm"], "tilt_deg": im["tilt_deg"],
                "padding_value": padding, "margin_mm": float(a["margin_mm"])}
    truth = truth_document(seed, opts_rec, anat, plaques, acq, labels, excess, pid, hu, landmarks, im["tilt_deg"],
                            blood_hu=tis["blood"])
    mid = pose.translation
    truth.update({
        "family": family, "style": style, "truncate": truncate,
        "coverage_z_mm": [height_at(plan, normal, 0, mid), height_at(plan, normal, plan.n_slices - 1, mid)],
        "truncate_window_conflict": bool(plan.conflict),
        "oblique_reformat_deg": float(im["oblique_deg"]), "oblique_axis_deg": float(im["oblique_axis_deg"]),
        "head_holder": im["holder"], "kernel": kern,
        "distractors": distractor_records(dist, pose.to_world), "vertebrobasilar_head": lines,
        "dental_fillings": [dict(f, centre_lps=[float(v) for v in pose.to_world(np.array(f["centre_head"]))])
                            for f in fillings],
        "dicom_missing_slices": missing, "truth_convention": TRUTH_CONVENTION,
    })
    aux = plaque_only(excess, tis["blood"])
    return Phantom(ct=ct, labels=labels, landmarks=landmarks, truth=truth, dicom=dicom, aux=aux)
