"""Calcifications that are NOT on the ICA (never labelled) and the vertebrobasilar arteries that carry some.

Types: ``vertebral`` (intracranial vertebral artery wall, through the foramen magnum beside the clivus),
``falx``, ``choroid`` (plexus in the ventricular atria), ``pineal``, ``basal_ganglia``, ``dura`` (inner table),
``petroclinoid`` and ``interclinoid`` (ligaments next to the cavernous/supraclinoid ICA: the near-ICA
confounders). Each is kept ≥ `MIN_GAP_MM` from the ICA's outer wall, so no plaque touches one. They are
coarse layers: the truth, made from the plaque-only rendering, never contains them.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from . import shapes as S
from .anatomy import BRANCH, AnatomySpec
from .layer import Layer

MIN_GAP_MM = 2.5
FAR_TYPES = ("vertebral", "falx", "choroid", "pineal", "basal_ganglia", "dura")
NEAR_TYPES = ("petroclinoid", "interclinoid")
_FAR_WEIGHTS = (0.2, 0.2, 0.2, 0.15, 0.1, 0.15)


def _landmark_heights(a: AnatomySpec) -> dict[str, float]:
    sl, sr = a.sides["L"], a.sides["R"]
    return {"zc": 0.5 * (sl.z_canal + sr.z_canal), "zpl": 0.5 * (sl.z_petrolingual + sr.z_petrolingual),
            "zcav": 0.5 * (sl.z_cavernous + sr.z_cavernous), "zac": 0.5 * (sl.z_clinoid + sr.z_clinoid)}


def vertebrobasilar(a: AnatomySpec, fm: tuple[float, float, float]) -> dict[str, list]:
    """Polylines (head frame) of the two intracranial vertebral arteries and the basilar artery.

    ``fm``: (foramen magnum centre y, its top z, clivus basion y) after skull-base flexion."""
    h = _landmark_heights(a)
    fm_y, zfm, basion_y = fm
    top = np.array([0.0, 4.0, h["zcav"] - 2.0])
    basion = np.array([0.0, basion_y, zfm - 14.0])
    u = (basion - top) / np.linalg.norm(basion - top)
    n_post = np.array([0.0, -u[2], u[1]])
    n_post = n_post if n_post[1] > 0 else -n_post        # perpendicular to the clivus, pointing backwards
    basilar = [top + s * (basion - top) + 8.5 * n_post for s in (0.05, 0.3, 0.55)]
    j = basilar[-1]
    out = {"basilar": [b.tolist() for b in basilar]}
    for sg, name in ((1.0, "L_vertebral"), (-1.0, "R_vertebral")):
        pts = [j + np.array([sg * 2.5, 2.0, -4.0]), np.array([sg * 8.5, fm_y - 9.0, zfm - 8.0]),
               np.array([sg * 10.5, fm_y - 7.0, zfm - 18.0]), np.array([sg * 14.0, fm_y - 4.0, zfm - 26.0])]
        out[name] = [j.tolist()] + [p.tolist() for p in pts]
    return out


def vessel_layers(lines: dict[str, list], blood_hu: float) -> list[Layer]:
    """Blood-filled tubes (radius 1.7 mm) along the vertebrobasilar polylines."""
    out = []
    for name, pts in lines.items():
        p = np.asarray(pts)
        lo, hi = tuple(p.min(axis=0) - 3.0), tuple(p.max(axis=0) + 3.0)

        def paint(x, y, z, w, p=p):
            d = None
            for a_, b_ in zip(p[:-1], p[1:]):
                dd = S.capsule(x, y, z, tuple(a_), tuple(b_), 1.7)
                d = dd if d is None else np.minimum(d, dd)
            return [(S.occupancy(d, w), blood_hu)]
        out.append(Layer(name, lo, hi, paint))
    return out


def _random_tangent(rng, normal):
    v = rng.standard_normal(3)
    v -= normal * (v @ normal)
    return v / np.linalg.norm(v)


def _candidate(kind: str, a: AnatomySpec, rng: np.random.Generator, lines: dict) -> dict:
    """One distractor of ``kind``: capsule ``a``→``b`` with radius ``r`` (head frame, mm) and HU."""
    h = _landmark_heights(a)
    zac = h["zac"]
    at = float(a.variant["anatomy"]["atrophy"]) if a.variant else 0.0
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    sg = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "vertebral":
        line = np.asarray(lines["L_vertebral" if sg > 0 else "R_vertebral"])
        k = int(rng.integers(1, len(line) - 1))
        t = u(0.0, 1.0)
        c = line[k] + t * (line[k + 1] - line[k])
        d = _random_tangent(rng, (line[k + 1] - line[k]) / np.linalg.norm(line[k + 1] - line[k]))
        c = c + 1.7 * d
        axis = line[k + 1] - line[k]
        axis = axis / np.linalg.norm(axis) * u(0.5, 2.0)
        return {"a": c - axis, "b": c + axis, "r": u(0.6, 1.2), "hu": u(250.0, 1000.0)}
    if kind == "falx":
        c = np.array([0.0, u(-40.0, 30.0), zac + u(35.0, 70.0)])
        d = np.array([0.0, np.cos(u(0, np.pi)), np.sin(u(0, np.pi))]) * u(3.0, 12.0)
        return {"a": c - d, "b": c + d, "r": u(0.6, 1.5), "hu": u(200.0, 900.0)}
    if kind == "choroid":
        c = np.array([sg * (22.0 + 4.0 * at + u(-2, 2)), u(24.0, 32.0), zac + u(20.0, 28.0)])
        d = np.array([0.0, 1.0, 0.3]) * u(0.5, 2.5)
        return {"a": c - d, "b": c + d, "r": u(1.5, 3.5), "hu": u(120.0, 450.0)}
    if kind == "pineal":
        c = np.array([0.0, u(18.0, 24.0), zac + u(13.0, 18.0)])
        return {"a": c, "b": c + np.array([0.0, u(0, 2.0), 0.0]), "r": u(1.2, 3.0), "hu": u(150.0, 600.0)}
    if kind == "basal_ganglia":
        c = np.array([sg * u(13.0, 18.0), u(-6.0, 4.0), zac + u(13.0, 20.0)])
        d = np.array([0.2, 1.0, 0.2]) * u(1.0, 4.0)
        return {"a": c - d, "b": c + d, "r": u(1.0, 2.5), "hu": u(130.0, 350.0)}
    if kind == "dura":
        th = u(0.2, 1.2)
        ph = u(0, 2 * np.pi)
        n = np.array([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)])
        rx, ry, rz = a.skull_radii
        cx, cy, cz = a.skull_centre
        t = a.vault_mm
        scale = 1.0 / np.sqrt((n[0] / (rx - t)) ** 2 + (n[1] / (ry - t)) ** 2 + (n[2] / (rz - t)) ** 2)
        c = np.array([cx, cy, cz]) + n * (scale - 1.5)
        d = _random_tangent(rng, n) * u(2.0, 8.0)
        return {"a": c - d, "b": c + d, "r": u(0.5, 1.2), "hu": u(200.0, 800.0)}
    if kind == "petroclinoid":
        sd = a.sides["L" if sg > 0 else "R"]
        p = np.array([sg * u(5.0, 7.0), u(2.5, 4.5), zac + u(1.0, 4.0)])
        q = np.array([sd.apex_xy[0] + sg * u(2.0, 5.0), sd.apex_xy[1] + u(5.0, 9.0), sd.z_petrolingual + u(1.0, 4.0)])
        s0, s1 = sorted(rng.uniform(0.0, 1.0, 2))
        return {"a": p + s0 * (q - p), "b": p + max(s1, s0 + 0.2) * (q - p), "r": u(0.6, 1.3), "hu": u(250.0, 900.0)}
    # interclinoid: from the anterior clinoid tip back to the posterior clinoid, above the sella
    sd = a.sides["L" if sg > 0 else "R"]
    p = np.array([sd.x_cavernous + sg * 6.2, sd.y_genu + 3.5, sd.z_clinoid - 0.5])
    q = np.array([sg * u(4.0, 6.0), u(2.0, 4.0), zac + u(2.0, 5.0)])
    s0, s1 = sorted(rng.uniform(0.0, 1.0, 2))
    return {"a": p + s0 * (q - p), "b": p + max(s1, s0 + 0.25) * (q - p), "r": u(0.6, 1.2), "hu": u(250.0, 900.0)}


def _ica_clearance(a: AnatomySpec) -> tuple[cKDTree, np.ndarray]:
    pts, outer = [], []
    for c in a.centrelines.values():
        keep = c.part != BRANCH
        pts.append(c.points[keep])
        outer.append(np.maximum(c.outer_r[keep], c.canal_r[keep]))
    return cKDTree(np.vstack(pts)), np.concatenate(outer)


def _gap(tree: cKDTree, outer: np.ndarray, d: dict) -> float:
    s = np.linspace(0.0, 1.0, 12)[:, None]
    pts = d["a"][None, :] + s * (d["b"] - d["a"])[None, :]
    dist, idx = tree.query(pts)
    return float((dist - outer[idx]).min() - d["r"])


def sample_distractors(a: AnatomySpec, rng: np.random.Generator, n: int, near_ica: bool,
                       lines: dict) -> list[dict]:
    """``n`` far distractors (+1 near-ICA one when ``near_ica``), each ≥ `MIN_GAP_MM` from the ICA wall."""
    tree, outer = _ica_clearance(a)
    kinds = [FAR_TYPES[int(rng.choice(len(FAR_TYPES), p=np.array(_FAR_WEIGHTS) / sum(_FAR_WEIGHTS)))]
             for _ in range(n)]
    if near_ica:
        kinds.append(NEAR_TYPES[int(rng.integers(len(NEAR_TYPES)))])
    out = []
    for kind in kinds:
        for _ in range(8):            # redraw a candidate that comes too close to the ICA
            d = _candidate(kind, a, rng, lines)
            if _gap(tree, outer, d) >= MIN_GAP_MM:
                d["type"] = kind
                out.append(d)
                break
    return out


def distractor_layers(ds: list[dict]) -> list[Layer]:
    out = []
    for n, d in enumerate(ds):
        a_, b_, r = tuple(d["a"]), tuple(d["b"]), float(d["r"])
        lo = tuple(np.minimum(d["a"], d["b"]) - r - 1.5)
        hi = tuple(np.maximum(d["a"], d["b"]) + r + 1.5)
        out.append(Layer(f"distractor_{d['type']}_{n}", lo, hi, lambda x, y, z, w, a_=a_, b_=b_, r=r, hu=d["hu"]: [
            (S.occupancy(S.capsule(x, y, z, a_, b_, r), w), hu)]))
    return out


def distractor_records(ds: list[dict], to_world) -> list[dict]:
    """truth.json records: type, HU, world end points and radius (a capsule), head-frame too."""
    return [{"type": d["type"], "hu": float(d["hu"]), "radius_mm": float(d["r"]),
             "a_lps": [float(v) for v in to_world(d["a"])], "b_lps": [float(v) for v in to_world(d["b"])],
             "a_head": [float(v) for v in d["a"]], "b_head": [float(v) for v in d["b"]]} for d in ds]
