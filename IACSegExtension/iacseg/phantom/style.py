"""Phantom families: each family name → ranges → one drawn *style* (every random choice, JSON-ready).

``classic`` is the original generator (no style draws). The randomised families differ in appearance
(tissue HU, reconstruction kernel, noise spectrum, artefacts), anatomy (head size/shape, skull-base flexion,
pneumatisation, atrophy, pose) and acquisition (matrix, slice thickness, tilt, oblique reformat, holders,
coverage), with ranges chosen so that the families really differ and a benchmark can hold one out:

* ``soft``  — soft-tissue kernel (in-plane smoothing, blotchy low-frequency noise), low noise, thin slices,
  large matrices, average heads;
* ``bone``  — sharp/bone kernel (edge overshoot, fine high-frequency noise 15–30 HU), thin-medium slices,
  broad (brachycephalic) large heads, dental metal with streaks;
* ``thick`` — thick slices (3–7 mm) with uneven spacing (missing slices in DICOM), gantry tilt, small
  matrices, head holders, sometimes short coverage, long (dolichocephalic) heads;
* ``aged``  — atrophy (wide sulci, large ventricles), many non-ICA calcifications, dense large plaques,
  strong beam hardening, oblique reformats, larger head pose.

Ranges: ``(lo, hi)`` → uniform; a list → one element, uniformly; ``{"p": x}`` → True with probability x;
``{"int": (lo, hi)}`` → integer lo..hi inclusive; ``{"w": {name: weight}}`` → weighted choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .warp import draw_waves

FAMILIES: tuple[str, ...] = ("classic", "soft", "bone", "thick", "aged")
RANDOMISED_FAMILIES: tuple[str, ...] = FAMILIES[1:]
FAMILY_CODE = {name: 1000 + n for n, name in enumerate(FAMILIES)}   # seed-sequence key of each family
ANY_CODE = 999

_ANATOMY_COMMON = {"petrous_air_p": {"p": 0.5}, "sinus_mucosa_mm": (0.0, 3.0), "teeth": {"p": 1.0}}

FAMILY_RANGES: dict[str, dict[str, dict[str, Any]]] = {
    "soft": {
        "anatomy": {"head_scale": (0.92, 1.08), "cephalic_index": (0.76, 0.82), "vault_mm": (5.0, 7.5),
                    "scalp_mm": (4.0, 7.0), "flexion_deg": (-4.0, 4.0), "atrophy": (0.0, 0.3),
                    "petrous_air": (0.2, 0.7), "sphenoid_air": (0.6, 1.0), "mastoid_air": (0.4, 0.9),
                    "yaw_deg": (-6.0, 6.0), "roll_deg": (-5.0, 5.0), "pitch_deg": (-6.0, 6.0), "shift_xy_mm": 12.0,
                    "warp_mm": (3.0, 6.0), "shift_z_mm": 30.0, **_ANATOMY_COMMON},
        "tissue": {"grey": (37.0, 44.0), "grey_white": (7.0, 11.0), "csf": (4.0, 12.0), "fat": (-110.0, -85.0),
                   "muscle": (42.0, 56.0), "blood": (36.0, 46.0), "cortical": (1350.0, 1750.0),
                   "petrous": (1250.0, 1600.0), "diploe": (450.0, 750.0), "sphenoid": (600.0, 900.0),
                   "clinoid": (850.0, 1200.0), "brain_texture_hu": (0.5, 2.0), "bone_texture_freq": (1.3, 1.9)},
        "kernel": {"type": ["soft"], "sigma_mm": (0.45, 0.8), "sharp_amount": (0.0, 0.0),
                   "name": ["SOFT", "H30s", "FC21", "STND-SOFT"]},
        "noise": {"hu": (3.0, 8.0), "peak_cyc_mm": (0.08, 0.16), "lowfreq": (0.2, 0.5), "attenuation": (0.3, 0.7)},
        "artefacts": {"beam_hardening_hu": (5.0, 20.0), "cupping_hu": (0.0, 6.0), "dental_metal_p": {"p": 0.1}},
        "acquisition": {"slice_mm": [0.5, 0.625, 0.75, 0.8, 1.0, 1.25, 1.5], "overlap_p": {"p": 0.3},
                        "matrix": [512, 640, 768], "fov_mm": (200.0, 240.0), "tilt_p": {"p": 0.0},
                        "tilt_deg": (0.0, 0.0), "oblique_p": {"p": 0.0}, "oblique_deg": (0.0, 0.0),
                        "uneven_p": {"p": 0.0}, "holder": {"w": {"none": 0.3, "cradle": 0.7}},
                        "coverage_mm": (120.0, 150.0), "margin_mm": (30.0, 45.0), "short_p": {"p": 0.0},
                        "padding_p": {"p": 0.4}},
        "plaques": {"n": {"int": (3, 10)}, "volume_mm3": (1.5, 45.0), "hu_power": 1.4},
        "distractors": {"n": {"int": (0, 2)}, "near_ica_p": {"p": 0.15}},
    },
    "bone": {
        "anatomy": {"head_scale": (1.0, 1.15), "cephalic_index": (0.82, 0.9), "vault_mm": (6.0, 9.0),
                    "scalp_mm": (5.0, 8.0), "flexion_deg": (-7.0, 3.0), "atrophy": (0.0, 0.4),
                    "petrous_air": (0.3, 1.0), "sphenoid_air": (0.8, 1.2), "mastoid_air": (0.6, 1.0),
                    "yaw_deg": (-8.0, 8.0), "roll_deg": (-8.0, 8.0), "pitch_deg": (-8.0, 4.0), "shift_xy_mm": 15.0,
                    "warp_mm": (3.0, 7.0), "shift_z_mm": 30.0, **_ANATOMY_COMMON},
        "tissue": {"grey": (33.0, 41.0), "grey_white": (4.0, 8.0), "csf": (2.0, 10.0), "fat": (-120.0, -90.0),
                   "muscle": (38.0, 52.0), "blood": (38.0, 52.0), "cortical": (1700.0, 2300.0),
                   "petrous": (1600.0, 2100.0), "diploe": (550.0, 950.0), "sphenoid": (750.0, 1100.0),
                   "clinoid": (1000.0, 1500.0), "brain_texture_hu": (0.0, 1.5), "bone_texture_freq": (1.8, 2.6)},
        "kernel": {"type": ["sharp"], "sigma_mm": (0.5, 0.9), "sharp_amount": (0.6, 1.4),
                   "name": ["BONE", "BONEPLUS", "H70h", "FC30", "YB"]},
        "noise": {"hu": (15.0, 30.0), "peak_cyc_mm": (0.45, 0.75), "lowfreq": (0.0, 0.1), "attenuation": (0.5, 1.0)},
        "artefacts": {"beam_hardening_hu": (15.0, 40.0), "cupping_hu": (0.0, 10.0), "dental_metal_p": {"p": 0.75}},
        "acquisition": {"slice_mm": [0.6, 0.625, 0.75, 1.0, 1.25, 2.0, 2.5], "overlap_p": {"p": 0.2},
                        "matrix": [512, 512, 768], "fov_mm": (210.0, 250.0), "tilt_p": {"p": 0.0},
                        "tilt_deg": (0.0, 0.0), "oblique_p": {"p": 0.0}, "oblique_deg": (0.0, 0.0),
                        "uneven_p": {"p": 0.0}, "holder": {"w": {"none": 0.2, "cradle": 0.5, "table": 0.3}},
                        "coverage_mm": (140.0, 170.0), "margin_mm": (50.0, 65.0), "short_p": {"p": 0.0},
                        "padding_p": {"p": 0.5}},
        "plaques": {"n": {"int": (3, 10)}, "volume_mm3": (1.5, 45.0), "hu_power": 1.2},
        "distractors": {"n": {"int": (1, 4)}, "near_ica_p": {"p": 0.3}},
    },
    "thick": {
        "anatomy": {"head_scale": (0.85, 1.02), "cephalic_index": (0.68, 0.76), "vault_mm": (4.5, 7.0),
                    "scalp_mm": (3.5, 6.5), "flexion_deg": (0.0, 8.0), "atrophy": (0.1, 0.5),
                    "petrous_air": (0.0, 0.6), "sphenoid_air": (0.4, 0.9), "mastoid_air": (0.2, 0.8),
                    "yaw_deg": (-10.0, 10.0), "roll_deg": (-8.0, 8.0), "pitch_deg": (-4.0, 12.0),
                    "shift_xy_mm": 18.0, "warp_mm": (4.0, 9.0), "shift_z_mm": 35.0, **_ANATOMY_COMMON},
        "tissue": {"grey": (34.0, 42.0), "grey_white": (5.0, 9.0), "csf": (5.0, 15.0), "fat": (-100.0, -70.0),
                   "muscle": (35.0, 50.0), "blood": (32.0, 44.0), "cortical": (1200.0, 1600.0),
                   "petrous": (1100.0, 1450.0), "diploe": (400.0, 700.0), "sphenoid": (500.0, 800.0),
                   "clinoid": (700.0, 1050.0), "brain_texture_hu": (1.0, 3.0), "bone_texture_freq": (1.1, 1.6)},
        "kernel": {"type": ["standard"], "sigma_mm": (0.3, 0.6), "sharp_amount": (0.0, 0.3),
                   "name": ["STANDARD", "H40s", "FC23", "UB"]},
        "noise": {"hu": (3.0, 7.0), "peak_cyc_mm": (0.2, 0.35), "lowfreq": (0.1, 0.3), "attenuation": (0.3, 0.8)},
        "artefacts": {"beam_hardening_hu": (10.0, 30.0), "cupping_hu": (0.0, 12.0), "dental_metal_p": {"p": 0.2}},
        "acquisition": {"slice_mm": [3.0, 3.75, 4.0, 4.8, 5.0, 6.0, 7.0], "overlap_p": {"p": 0.0},
                        "matrix": [256, 320, 384, 512], "fov_mm": (220.0, 260.0), "tilt_p": {"p": 0.7},
                        "tilt_deg": (5.0, 25.0), "oblique_p": {"p": 0.0}, "oblique_deg": (0.0, 0.0),
                        "uneven_p": {"p": 0.5},
                        "holder": {"w": {"none": 0.1, "cradle": 0.35, "u_frame": 0.35, "table": 0.2}},
                        "coverage_mm": (140.0, 175.0), "margin_mm": (30.0, 50.0), "short_p": {"p": 0.25},
                        "padding_p": {"p": 0.5}},
        "plaques": {"n": {"int": (3, 10)}, "volume_mm3": (2.0, 50.0), "hu_power": 1.4},
        "distractors": {"n": {"int": (0, 3)}, "near_ica_p": {"p": 0.2}},
    },
    "aged": {
        "anatomy": {"head_scale": (0.88, 1.12), "cephalic_index": (0.72, 0.86), "vault_mm": (6.5, 10.0),
                    "scalp_mm": (3.0, 6.0), "flexion_deg": (-6.0, 6.0), "atrophy": (0.45, 1.0),
                    "petrous_air": (0.0, 0.8), "sphenoid_air": (0.6, 1.2), "mastoid_air": (0.1, 0.7),
                    "yaw_deg": (-15.0, 15.0), "roll_deg": (-12.0, 12.0), "pitch_deg": (-12.0, 18.0),
                    "shift_xy_mm": 20.0, "warp_mm": (3.0, 7.0), "shift_z_mm": 35.0, **_ANATOMY_COMMON},
        "tissue": {"grey": (33.0, 40.0), "grey_white": (3.0, 7.0), "csf": (0.0, 8.0), "fat": (-105.0, -75.0),
                   "muscle": (30.0, 46.0), "blood": (34.0, 50.0), "cortical": (1300.0, 1900.0),
                   "petrous": (1300.0, 1800.0), "diploe": (350.0, 650.0), "sphenoid": (600.0, 1000.0),
                   "clinoid": (900.0, 1350.0), "brain_texture_hu": (1.0, 3.0), "bone_texture_freq": (1.4, 2.2)},
        "kernel": {"type": ["standard"], "sigma_mm": (0.25, 0.5), "sharp_amount": (0.1, 0.5),
                   "name": ["STANDARD", "H41s", "FC26", "J40s"]},
        "noise": {"hu": (6.0, 15.0), "peak_cyc_mm": (0.25, 0.45), "lowfreq": (0.05, 0.25), "attenuation": (0.6, 1.2)},
        "artefacts": {"beam_hardening_hu": (30.0, 70.0), "cupping_hu": (4.0, 18.0), "dental_metal_p": {"p": 0.35}},
        "acquisition": {"slice_mm": [0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0], "overlap_p": {"p": 0.2},
                        "matrix": [512], "fov_mm": (220.0, 250.0), "tilt_p": {"p": 0.0}, "tilt_deg": (0.0, 0.0),
                        "oblique_p": {"p": 0.7}, "oblique_deg": (2.0, 8.0), "uneven_p": {"p": 0.1},
                        "holder": {"w": {"none": 0.2, "cradle": 0.4, "u_frame": 0.2, "table": 0.2}},
                        "coverage_mm": (140.0, 165.0), "margin_mm": (35.0, 50.0), "short_p": {"p": 0.0},
                        "padding_p": {"p": 0.4}},
        "plaques": {"n": {"int": (6, 14)}, "volume_mm3": (5.0, 90.0), "hu_power": 0.7},
        "distractors": {"n": {"int": (4, 10)}, "near_ica_p": {"p": 0.8}},
    },
}

MAX_VOXELS = 110_000_000   # larger draws fall back to a smaller matrix (memory on ordinary machines)


def resolve_family(seed: int, family: str | None) -> str:
    """``None``/``"classic"`` → ``"classic"``; ``"any"`` → one randomised family drawn from the seed."""
    if family is None:
        return "classic"
    name = str(family).lower()
    if name == "any":
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), ANY_CODE]))
        return RANDOMISED_FAMILIES[int(rng.integers(len(RANDOMISED_FAMILIES)))]
    if name not in FAMILIES:
        raise ValueError(f"unknown phantom family {family!r}; choose one of {', '.join(FAMILIES)} or 'any'")
    return name


def family_streams(seed: int, family: str, n: int) -> list[np.random.Generator]:
    """``n`` independent generators for (seed, family): same inputs → same streams."""
    ss = np.random.SeedSequence([int(seed), FAMILY_CODE[family]])
    return [np.random.default_rng(s) for s in ss.spawn(n)]


def _draw(rng: np.random.Generator, spec: Any) -> Any:
    if isinstance(spec, tuple):
        return float(rng.uniform(spec[0], spec[1])) if spec[1] > spec[0] else float(spec[0])
    if isinstance(spec, list):
        v = spec[int(rng.integers(len(spec)))]
        return float(v) if isinstance(v, float) else v
    if isinstance(spec, dict) and "p" in spec:
        return bool(rng.random() < spec["p"])
    if isinstance(spec, dict) and "int" in spec:
        return int(rng.integers(spec["int"][0], spec["int"][1] + 1))
    if isinstance(spec, dict) and "w" in spec:
        names = list(spec["w"])
        w = np.array([spec["w"][k] for k in names], float)
        return names[int(rng.choice(len(names), p=w / w.sum()))]
    return spec   # constants


def draw_style(family: str, rng: np.random.Generator) -> dict[str, dict[str, Any]]:
    """Every randomised parameter of one phantom of ``family`` (sections as in `FAMILY_RANGES`)."""
    ranges = FAMILY_RANGES[family]
    style = {sec: {k: _draw(rng, spec) for k, spec in items.items()} for sec, items in ranges.items()}
    t = style["tissue"]
    t["white"] = t["grey"] - t.pop("grey_white")
    # a few derived draws that need the first ones
    a = style["anatomy"]
    a["shift_xy"] = [float(v) for v in rng.uniform(-a["shift_xy_mm"], a["shift_xy_mm"], 2)]
    a["shift_z"] = float(rng.uniform(-a["shift_z_mm"], a["shift_z_mm"]))
    a["petrous_air"] = a["petrous_air"] if a.pop("petrous_air_p") else 0.0
    a["texture_phase"] = [float(v) for v in rng.uniform(0, 2 * np.pi, 9)]
    a["warp_waves"] = draw_waves(rng, a["warp_mm"])
    style["artefacts"]["dental_metal"] = style["artefacts"].pop("dental_metal_p")
    style["artefacts"]["metal_hu"] = float(rng.uniform(5000.0, 12000.0))
    style["artefacts"]["metal_streak_hu"] = float(rng.uniform(150.0, 600.0))
    style["artefacts"]["n_fillings"] = int(rng.integers(1, 6))
    style["artefacts"]["seed"] = int(rng.integers(0, 2 ** 31))
    style["noise"]["seed"] = int(rng.integers(0, 2 ** 31))
    acq = style["acquisition"]
    acq["tilt_deg"] = acq["tilt_deg"] if acq.pop("tilt_p") else 0.0
    acq["oblique_deg"] = acq["oblique_deg"] if acq.pop("oblique_p") else 0.0
    acq["oblique_axis_deg"] = float(rng.uniform(0.0, 180.0))
    acq["overlap"] = acq.pop("overlap_p")
    acq["uneven"] = acq.pop("uneven_p")
    acq["missing_slices"] = int(rng.integers(1, 4))
    acq["missing_at"] = float(rng.uniform(0.2, 0.8))
    acq["short"] = acq.pop("short_p")
    acq["short_margin_mm"] = float(rng.uniform(6.0, 15.0))
    acq["short_above_mm"] = float(rng.uniform(10.0, 30.0))
    acq["padding"] = acq.pop("padding_p")
    acq["truncate_at"] = float(rng.uniform(0.0, 1.0))
    h = {"holder_gap_mm": (2.0, 12.0), "holder_thick_mm": (2.0, 6.0), "holder_hu": (150.0, 700.0),
         "table_mm": (10.0, 25.0),
         "holder_radius_mm": (92.0, 118.0), "holder_angle_deg": (50.0, 80.0), "pad_hu": (-750.0, -150.0),
         "pad_mm": (8.0, 20.0), "table_hu": (100.0, 400.0), "mattress_hu": (-850.0, -500.0),
         "strap_p": {"p": 0.3}}
    acq.update({k: _draw(rng, v) for k, v in h.items()})
    style["plaques"]["volume_mm3"] = list(ranges["plaques"]["volume_mm3"])
    return style


def kernel_of(style: dict) -> dict:
    """The reconstruction kernel of a style: type soft/standard/sharp, σ (mm) and sharpening amount."""
    k = style["kernel"]
    return {"type": k["type"], "sigma_mm": k["sigma_mm"], "sharp_amount": k["sharp_amount"], "name": k["name"]}


def describe_families() -> str:
    """One line per family for help texts."""
    lines = []
    for name in RANDOMISED_FAMILIES:
        r = FAMILY_RANGES[name]
        sl, mx = r["acquisition"]["slice_mm"], r["acquisition"]["matrix"]
        matrix = f"{min(mx)}" if min(mx) == max(mx) else f"{min(mx)}-{max(mx)}"
        lines.append(f"{name}: {r['kernel']['type'][0]} kernel, noise {r['noise']['hu'][0]:g}-{r['noise']['hu'][1]:g} "
                     f"HU, slices {min(sl):g}-{max(sl):g} mm, matrix {matrix}")
    return "; ".join(lines)
