"""`make_phantom` (one deterministic synthetic head CT with exact truth), `write_phantom`, `generate_cases`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..core.contracts import LANDMARK_KINDS, LANDMARKS
from ..io.volume import CTVolume
from ..core.landmarks import Landmark
from ..core.progress import Progress, no_progress
from .anatomy import AnatomySpec, crossing_point, random_anatomy
from .case import Phantom, plaque_only, truth_document
from .dicom_stack import DicomStack, acquisition
from .layers import build_layers
from .plaques import BLOOD_HU, sample_plaques
from .render import Renderer, fov_outside_mask
from .truth import truth_labels
from .vessels import ArteryRenderer

SLICE_CHOICES_MM = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
NOISE_SIGMA_PX = 0.6


def _imaging(rng: np.random.Generator, seed: int, slice_mm, matrix, fov_mm, coverage_mm, head_rest, n_plaques,
             noise_hu, tilt_deg) -> dict[str, Any]:
    """Imaging options; every random draw is made whether or not it is overridden (stable streams)."""
    thick = float(rng.choice(SLICE_CHOICES_MM))
    overlap = rng.random() < 0.3 and thick <= 1.25
    draws = {"fov": rng.uniform(220.0, 250.0), "noise": rng.uniform(4.0, 12.0), "rest": rng.random() < 0.3,
             "n": int(rng.integers(3, 11)), "margin": rng.uniform(35.0, 50.0), "coverage": rng.uniform(140, 160),
             "padding": rng.random() < 0.4, "rest_gap": rng.uniform(4.0, 15.0), "rest_thick": rng.uniform(8.0, 15.0),
             "rest_hu": rng.uniform(200.0, 600.0), "rest_radius": rng.uniform(95.0, 115.0),
             "rest_angle": rng.uniform(55.0, 75.0), "shuffle": int(rng.integers(0, 2 ** 31))}
    if slice_mm is not None:
        thickness = spacing = float(slice_mm)
    else:
        thickness, spacing = thick, (thick / 2.0 if overlap else thick)
    return {"thickness_mm": thickness, "spacing_mm": spacing,
            "fov_mm": float(fov_mm) if fov_mm is not None else float(draws["fov"]), "matrix": int(matrix),
            "noise_hu": float(noise_hu) if noise_hu is not None else float(draws["noise"]),
            "head_rest": bool(head_rest) if head_rest is not None else bool(draws["rest"]),
            "n_plaques": int(n_plaques) if n_plaques is not None else draws["n"],
            "coverage_mm": float(coverage_mm) if coverage_mm is not None else float(draws["coverage"]),
            "margin_mm": float(draws["margin"]), "tilt_deg": float(tilt_deg),
            "padding_value": -2000 if draws["padding"] else None, "draws": draws, "seed": seed}


def _head_rest(a: AnatomySpec, im: dict) -> dict | None:
    if not im["head_rest"]:
        return None
    d = im["draws"]
    back = a.pose.to_world(np.array([0.0, a.skull_centre[1] + a.skull_radii[1] + a.scalp_mm, a.skull_centre[2]]))
    r = float(d["rest_radius"])
    return {"centre_y": float(back[1] + d["rest_gap"] - r), "radius_mm": r, "thickness_mm": float(d["rest_thick"]),
            "hu": float(d["rest_hu"]), "cos_limit": float(np.cos(np.radians(d["rest_angle"])))}


def _noise(rng: np.random.Generator, shape, sigma_hu: float) -> np.ndarray:
    """Slightly correlated (in-plane Gaussian, σ = 0.6 px) noise with standard deviation ``sigma_hu``."""
    white = rng.standard_normal(shape, dtype=np.float32)
    if sigma_hu <= 0:
        return np.zeros(shape, np.float32)
    smooth = ndimage.gaussian_filter(white, (0, NOISE_SIGMA_PX, NOISE_SIGMA_PX), truncate=3.0)
    x = np.arange(-3, 4)
    g = np.exp(-0.5 * (x / NOISE_SIGMA_PX) ** 2)
    g /= g.sum()
    return smooth * np.float32(sigma_hu / float((g ** 2).sum()))


def make_phantom(seed: int, *, family: str | None = None, truncate: str | None = None,
                 slice_mm: float | None = None, tilt_deg: float | None = None, matrix: int | None = None,
                 fov_mm: float | None = None, coverage_mm: float | None = None, head_rest: bool | None = None,
                 n_plaques: int | None = None, noise_hu: float | None = None,
                 progress: Progress = no_progress) -> Phantom:
    """A deterministic synthetic head CT (HU) with exact truth; same seed, family and options → identical arrays.

    ``family``: ``None``/``"classic"`` (the original generator, bit for bit), one of
    `style.RANDOMISED_FAMILIES` (``soft``, ``bone``, ``thick``, ``aged``: domain-randomised appearance, anatomy
    and acquisition), or ``"any"`` (one of those drawn from the seed). ``truncate``: ``"bottom"`` (first slice
    between the higher carotid canal + 2 mm and the lower petrolingual − 2 mm: no cervical segment, part of the
    petrous), ``"top"`` (last slice between the higher petrolingual + 2 mm and the lower anterior clinoid − 2 mm)
    or ``None`` (every landmark scanned).
    ``slice_mm``: slice thickness = spacing (mm; default random: classic 0.625–5, else the family's range).
    ``tilt_deg``: gantry tilt about the left-right axis (default 0; families draw it), the CT is then on the
    tilt-corrected grid and ``dicom`` holds the sheared stack. ``matrix``/``fov_mm``: in-plane size (pixels;
    default 512 classic, else the family's) and field of view (mm). ``coverage_mm``: z extent (mm, default ~150
    from ≥35 mm below the carotid canal). ``noise_hu``: noise standard deviation (HU; 0 = noise-free).
    Explicit options override the family's draws.
    """
    from .style import resolve_family

    fam = resolve_family(seed, family)
    if truncate is not None and truncate not in ("bottom", "top"):
        raise ValueError(f"truncate must be None, 'bottom' or 'top', not {truncate!r}")
    if fam != "classic":
        from .randomised import make_family_phantom

        opts = {"slice_mm": slice_mm, "tilt_deg": tilt_deg, "matrix": matrix, "fov_mm": fov_mm,
                "coverage_mm": coverage_mm, "head_rest": head_rest, "n_plaques": n_plaques, "noise_hu": noise_hu}
        return make_family_phantom(int(seed), fam, truncate, opts, progress)
    tilt_deg = 0.0 if tilt_deg is None else tilt_deg
    matrix = 512 if matrix is None else matrix
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4)]
    anat = random_anatomy(streams[0])
    im = _imaging(streams[2], seed, slice_mm, matrix, fov_mm, coverage_mm, head_rest, n_plaques, noise_hu, tilt_deg)
    plaques = sample_plaques(anat, streams[1], im["n_plaques"])
    pose = anat.pose
    # true landmarks: where each ICA crosses its side's bony transition heights (head frame) → world
    points = {f"{s}_{k}": pose.to_world(crossing_point(anat.centrelines[s], h))
              for s in ("L", "R") for k, h in anat.side_heights(s).items()}
    z_canal_low = min(points["L_carotid_canal"][2], points["R_carotid_canal"][2])
    span = max(points["L_anterior_clinoid"][2], points["R_anterior_clinoid"][2]) - z_canal_low
    margin = min(im["margin_mm"], max(5.0, 0.5 * (im["coverage_mm"] - span)))
    z_bottom = z_canal_low - margin
    n_slices = max(1, int(round(im["coverage_mm"] / im["spacing_mm"])) + 1)
    if truncate is not None:      # classic geometry with a truncated end (extra draw on the imaging stream only)
        from .scan_plan import plan_z, slice_normal

        nrm = slice_normal(float(tilt_deg), 0.0, 0.0)
        zp = plan_z(points, nrm, im["spacing_mm"], im["coverage_mm"], margin, truncate, float(streams[2].random()))
        z_bottom, n_slices = zp.z_bottom, zp.n_slices
    acq = acquisition(im["matrix"], im["fov_mm"], z_bottom, n_slices, im["spacing_mm"], im["thickness_mm"], tilt_deg)

    layers = build_layers(anat, _head_rest(anat, im))
    arteries = [ArteryRenderer(anat.centrelines[s], [p for p in plaques if p.side == s], pose, anat.sides[s].z_canal)
                for s in ("L", "R")]
    renderer = Renderer(layers, arteries, pose)
    hu, excess, pid = renderer.render(acq.grid_stack, progress, "phantom")
    outside = fov_outside_mask(acq.grid_stack)
    hu += _noise(streams[3], hu.shape, im["noise_hu"]) * ~outside
    heights = {s: {k: float(points[f"{s}_{k}"][2]) for k in LANDMARK_KINDS} for s in ("L", "R")}
    labels = truth_labels(excess, pid, plaques, acq.grid, heights)
    landmarks = {name: Landmark(name, float(points[name][2]), tuple(float(v) for v in points[name]),
                                slice=float(acq.landmark_slice(points[name])), confidence=1.0) for name in LANDMARKS}
    dicom = None
    if acq.dicom_stack is not None:
        dhu, _, _ = renderer.render(acq.dicom_stack, progress, "phantom (tilted slices)")
        dout = fov_outside_mask(acq.dicom_stack)
        dhu += _noise(streams[3], dhu.shape, im["noise_hu"]) * ~dout
        dicom = DicomStack(dhu, acq.dicom_stack.origins.copy(), tuple(acq.dicom_stack.row), tuple(acq.dicom_stack.col),
                           (acq.dicom_stack.dy, acq.dicom_stack.dx), im["thickness_mm"], float(tilt_deg),
                           padding_value=im["padding_value"], padding_mask=dout if im["padding_value"] else None,
                           shuffle_seed=im["draws"]["shuffle"], uid_seed=int(seed))
    metadata = {"modality": "CT", "source_format": "phantom", "series_uid": None,
                "slice_thickness_mm": im["thickness_mm"], "gantry_tilt_deg": float(tilt_deg), "kernel": "STANDARD",
                "manufacturer": "IACSeg phantom", "corrections": [], "warnings": [], "phantom_seed": int(seed)}
    ct = CTVolume(hu, acq.grid, metadata)
    truth = truth_document(seed, im, anat, plaques, acq, labels, excess, pid, hu, landmarks, tilt_deg)
    mid = pose.translation
    t = np.radians(float(tilt_deg))
    z_mid = [float(z_bottom + k * im["spacing_mm"] + mid[1] * np.tan(t)) for k in (0, n_slices - 1)]
    truth.update({"family": "classic", "truncate": truncate, "coverage_z_mm": z_mid,
                  "style": {"imaging": {k: (v if not isinstance(v, np.generic) else v.item())
                                        for k, v in im["draws"].items()}}})
    return Phantom(ct=ct, labels=labels, landmarks=landmarks, truth=truth, dicom=dicom,
                   aux=plaque_only(excess, BLOOD_HU))


def write_phantom(phantom: Phantom, case_dir: Path, dicom: bool = False) -> Path:
    """Write ``ct.nii.gz`` (or a ``dicom/`` series), ``truth_calcifications.nii.gz``, ``truth_landmarks.mrk.json``
    and ``truth.json`` into ``case_dir`` atomically (an existing folder is replaced). Returns ``case_dir``."""
    from ..io.writers import write_image
    from ..core.files import atomic_folder
    from ..outputs.truth_folder import CT_FILE, DICOM_DIR, write_truth_files

    case_dir = Path(case_dir)
    with atomic_folder(case_dir, overwrite=True) as tmp:
        if dicom:
            stack = phantom.dicom or _axial_dicom(phantom)
            stack.write(tmp / DICOM_DIR)
        else:
            write_image(tmp / CT_FILE, np.round(phantom.ct.hu).astype(np.int16), phantom.ct.grid)
        write_truth_files(tmp, phantom.labels, phantom.ct.grid, phantom.landmarks, phantom.truth,
                          description="IACSeg synthetic phantom truth landmarks")
    return case_dir


def _axial_dicom(phantom: Phantom) -> DicomStack:
    g = phantom.ct.grid
    k = np.arange(g.shape[0])[:, None]
    positions = np.asarray(g.origin) + k * g.spacing[2] * g.slice_normal
    dirs = g.direction_matrix
    opts = phantom.truth["options"]
    pad = opts.get("padding_value")
    mask = None
    if pad is not None:
        mask = phantom.ct.hu <= -1000.0 + 1e-3
    return DicomStack(phantom.ct.hu, positions, tuple(float(v) for v in dirs[:, 0]),
                      tuple(float(v) for v in dirs[:, 1]), (g.spacing[1], g.spacing[0]),
                      phantom.truth["slice_thickness_mm"], 0.0, padding_value=pad, padding_mask=mask,
                      shuffle_seed=int(phantom.truth["seed"]) + 1, uid_seed=int(phantom.truth["seed"]),
                      kernel=str(phantom.ct.metadata.get("kernel", "STANDARD")))


def case_name(seed: int) -> str:
    """The folder name of phantom ``seed`` under `generate_cases`'s output folder: ``phantom_NNNNN``."""
    return f"phantom_{int(seed):05d}"


def generate_cases(out_dir: Path, seed: int, count: int = 1, *, dicom: bool = False,
                   progress: Progress = no_progress, **opts: Any) -> list[Path]:
    """Write ``count`` phantoms with seeds ``seed, seed+1, …`` into ``out_dir/phantom_{seed:05d}`` (`case_name`); an
    existing case folder is replaced (`iacseg phantom` first checks it holds only a previous phantom)."""
    out = []
    for n in range(count):
        s = int(seed) + n
        sub = (lambda stage, frac, msg="", n=n: progress("phantom", (n + frac) / count, f"case {n + 1}/{count}: {msg}"))
        ph = make_phantom(s, progress=sub, **opts)
        out.append(write_phantom(ph, Path(out_dir) / case_name(s), dicom=dicom))
        progress("phantom", (n + 1) / count, f"wrote {case_name(s)}")
    return out
