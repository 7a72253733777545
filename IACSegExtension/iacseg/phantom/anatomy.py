"""Random anatomy of one phantom: head frame, skull-base heights per side, ICA centrelines, head pose.

Head frame: mm, LPS-like axes of an upright head (+x patient left, +y posterior, +z superior) with the
origin near the sella. World (scanner LPS) = ``pose.rotation @ head + pose.translation``.

Per side the three landmark heights are crisp bony transitions in the head frame:

* ``z_canal`` — the flat underside of the petrous bone at the external opening of the carotid canal
  (below it the ICA runs in soft tissue, above it inside a ring of bone);
* ``z_petrolingual`` — the flat top of the bone ring around the ICA where it leaves the petrous apex over
  the foramen lacerum (petrolingual ligament); above it the ICA lies in the cavernous sinus;
* ``z_clinoid`` — the flat top of the anterior clinoid process lateral to the ICA's anterior genu.

The centreline is built so its height never decreases from the neck to the terminal bifurcation, hence the
height rule of docs/DESIGN.md and the anatomical segment agree everywhere on the artery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Part codes of centreline points.
CERVICAL, PETROUS, CAVERNOUS, SUPRACLINOID, BRANCH = 0, 1, 2, 3, 4
PART_NAMES = ("cervical", "petrous", "cavernous", "supraclinoid")


@dataclass
class SideAnatomy:
    """One side's skull-base geometry (head frame, mm). ``sign`` is +1 for the patient's left (L), -1 for R."""

    side: str
    sign: float
    z_canal: float
    z_horizontal: float          # petrous horizontal segment height
    z_petrolingual: float
    z_cavernous: float           # horizontal cavernous segment height
    z_clinoid: float
    z_terminal: float
    entry_xy: tuple[float, float]    # carotid canal external opening
    apex_xy: tuple[float, float]     # where the ICA leaves the petrous apex
    x_cavernous: float
    y_genu: float                    # anterior genu
    lumen_scale: float
    wall_mm: float
    canal_gap_mm: float


@dataclass
class Centreline:
    """A dense polyline (0.2 mm steps) of one side's ICA plus its branch stubs, head frame."""

    points: np.ndarray        # (N, 3) mm
    lumen_r: np.ndarray       # (N,) mm
    outer_r: np.ndarray       # (N,) mm (lumen + wall)
    part: np.ndarray          # (N,) int8 part code
    arc: np.ndarray           # (N,) arc length mm along its own branch
    n1: np.ndarray            # (N, 3) unit normals (rotation-minimising frame)
    n2: np.ndarray            # (N, 3)
    canal_r: np.ndarray       # (N,) carotid-canal radius (petrous points), mm


@dataclass
class Pose:
    """Rigid head pose: world = rotation @ head + translation (LPS mm)."""

    yaw_deg: float
    roll_deg: float
    pitch_deg: float
    rotation: np.ndarray
    translation: np.ndarray

    def to_world(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=float) @ self.rotation.T + self.translation

    def to_dict(self) -> dict:
        return {"yaw_deg": self.yaw_deg, "roll_deg": self.roll_deg, "pitch_deg": self.pitch_deg,
                "rotation": self.rotation.tolist(), "translation_mm": self.translation.tolist()}


@dataclass
class AnatomySpec:
    """Everything random about a phantom's anatomy (drawn from the seed)."""

    head_scale: float
    skull_radii: tuple[float, float, float]
    skull_centre: tuple[float, float, float]
    vault_mm: float
    scalp_mm: float
    sphenoid_half: tuple[float, float]   # (x, y) half sizes mm
    septum_x: float
    anterior_floor_offset: float
    bone_hu: dict[str, float]
    texture_phase: tuple[float, float, float]
    sides: dict[str, SideAnatomy]
    pose: Pose
    centrelines: dict[str, Centreline] = field(default_factory=dict)
    variant: dict | None = None     # randomised families: {"anatomy": {...}, "tissue": {...}} (None = classic)

    def side_heights(self, side: str) -> dict[str, float]:
        s = self.sides[side]
        return {"carotid_canal": s.z_canal, "petrolingual": s.z_petrolingual, "anterior_clinoid": s.z_clinoid}


def rotation_matrix(yaw_deg: float, roll_deg: float, pitch_deg: float) -> np.ndarray:
    """Rz(yaw) @ Ry(roll) @ Rx(pitch); yaw about +z (superior), roll about +y (posterior), pitch about +x."""
    a, b, c = np.radians([yaw_deg, roll_deg, pitch_deg])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


def _side(rng: np.random.Generator, side: str, base: dict, hx: float) -> SideAnatomy:
    sign = 1.0 if side == "L" else -1.0
    j = lambda s: float(rng.normal(0.0, s))  # noqa: E731  (small L/R asymmetry)
    z_canal = base["z_canal"] + j(1.0)
    z_h = z_canal + base["vertical"] + j(0.6)
    z_pl = z_h + base["lacerum"] + j(0.4)
    z_cav = z_pl + base["cav_rise"] + j(0.4)
    z_ac = z_cav + base["genu_rise"] + j(0.5)
    x_cav = hx + rng.uniform(3.8, 5.0)
    return SideAnatomy(
        side=side, sign=sign, z_canal=z_canal, z_horizontal=z_h, z_petrolingual=z_pl, z_cavernous=z_cav,
        z_clinoid=z_ac, z_terminal=z_ac + base["supra"] + j(0.8),
        entry_xy=(sign * (base["entry_x"] + j(1.0)), base["entry_y"] + j(1.0)),
        apex_xy=(sign * (x_cav + rng.uniform(0.5, 1.5)), base["apex_y"] + j(0.5)),
        x_cavernous=sign * x_cav, y_genu=base["y_genu"] + j(0.8),
        lumen_scale=base["lumen"] * float(rng.uniform(0.95, 1.05)), wall_mm=float(rng.uniform(0.55, 0.8)),
        canal_gap_mm=float(rng.uniform(0.25, 0.6)),
    )


def random_anatomy(rng: np.random.Generator, variation: dict | None = None) -> AnatomySpec:
    """Draw a phantom anatomy (sizes and positions vary by several mm between seeds).

    ``variation`` (randomised families, see `style`): ``{"anatomy": {...}, "tissue": {...}}`` drawn per family;
    it replaces head size/shape, pose, vault, scalp and bone densities and scales the skull base with the head.
    The same draws are made with or without it (the classic stream is unchanged when it is ``None``).
    """
    scale = float(rng.uniform(0.93, 1.06))
    hx = float(rng.uniform(10.5, 13.0))
    base = {
        "z_canal": rng.uniform(-31.0, -25.0), "vertical": rng.uniform(7.5, 10.5), "lacerum": rng.uniform(6.0, 8.5),
        "cav_rise": rng.uniform(4.5, 6.5), "genu_rise": rng.uniform(6.5, 9.0), "supra": rng.uniform(9.0, 13.0),
        "entry_x": rng.uniform(27.0, 32.0), "entry_y": rng.uniform(10.0, 15.0), "apex_y": rng.uniform(0.0, 3.0),
        "y_genu": rng.uniform(-17.0, -12.0), "lumen": rng.uniform(0.9, 1.1),
    }
    va = variation["anatomy"] if variation is not None else None
    if va is not None:
        scale = float(va["head_scale"])
        sb = 1.0 + 0.6 * (scale - 1.0)            # the skull base grows less than the vault
        for k in ("z_canal", "vertical", "lacerum", "cav_rise", "genu_rise", "supra", "entry_x", "entry_y",
                  "apex_y", "y_genu"):
            base[k] *= sb
        hx *= sb
    sides = {s: _side(rng, s, base, hx) for s in ("L", "R")}
    yaw, roll, pitch = rng.uniform(-8, 8), rng.uniform(-8, 8), rng.uniform(-5, 5)
    if va is not None:
        yaw, roll, pitch = va["yaw_deg"], va["roll_deg"], va["pitch_deg"]
    rot = rotation_matrix(yaw, roll, pitch)
    offset = np.array([rng.uniform(-15, 15), rng.uniform(-15, 15), rng.uniform(-40, 40)])
    centre = (0.0, 10.0 * scale, 12.0)
    radii = (70.0 * scale, 90.0 * scale, 82.0 * scale)
    if va is not None:
        offset = np.array([va["shift_xy"][0], va["shift_xy"][1], va["shift_z"]])
        ci = float(va["cephalic_index"])
        length = 2.0 * 79.37 * scale / np.sqrt(ci)     # skull length (mm); width = ci * length
        radii = (max(0.5 * ci * length, 62.0), 0.5 * length, 82.0 * scale * (0.9 + 0.12 * (ci - 0.7) / 0.2))
        centre = (0.0, 10.0 * scale + 0.5 * length - 90.0 * scale, 12.0)
    translation = offset - rot @ np.array([0.0, centre[1], 0.0])
    spec = AnatomySpec(
        head_scale=scale, skull_radii=radii, skull_centre=centre,
        vault_mm=float(rng.uniform(5.5, 7.5)), scalp_mm=float(rng.uniform(4.0, 6.5)),
        sphenoid_half=(hx, float(rng.uniform(12.0, 14.0))), septum_x=float(rng.uniform(-3.0, 3.0)),
        anterior_floor_offset=float(rng.uniform(-1.0, 3.0)),
        bone_hu={"cortical": float(rng.uniform(1500, 1800)), "petrous": float(rng.uniform(1200, 1600)),
                 "diploe": float(rng.uniform(550, 800)), "sphenoid": float(rng.uniform(700, 950)),
                 "clinoid": float(rng.uniform(900, 1300))},
        texture_phase=tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 3)),  # type: ignore[arg-type]
        sides=sides, pose=Pose(float(yaw), float(roll), float(pitch), rot, translation),
    )
    if va is not None:
        t = variation["tissue"]
        spec.vault_mm, spec.scalp_mm = float(va["vault_mm"]), float(va["scalp_mm"])
        spec.bone_hu = {k: float(t[k]) for k in ("cortical", "petrous", "diploe", "sphenoid", "clinoid")}
        spec.texture_phase = tuple(va["texture_phase"][:3])  # type: ignore[assignment]
        spec.variant = {"anatomy": dict(va), "tissue": dict(t)}
    spec.centrelines = {s: ica_centreline(sides[s]) for s in sides}
    return spec


def _chaikin(p: np.ndarray, iterations: int = 3) -> np.ndarray:
    for _ in range(iterations):
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        inner = np.empty((2 * len(q), 3))
        inner[0::2], inner[1::2] = q, r
        p = np.vstack([p[:1], inner, p[-1:]])
    return p


def _resample(p: np.ndarray, step: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(0.0, arc[-1] + 1e-9, step)
    return np.stack([np.interp(s, arc, p[:, a]) for a in range(3)], axis=1), s


def _frames(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.gradient(p, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    n1 = np.empty_like(p)
    ref = np.array([0.0, 1.0, 0.0]) if abs(t[0, 1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    v = ref - t[0] * (ref @ t[0])
    n1[0] = v / np.linalg.norm(v)
    for i in range(1, len(p)):
        v = n1[i - 1] - t[i] * (n1[i - 1] @ t[i])
        n1[i] = v / np.linalg.norm(v)
    return n1, np.cross(t, n1)


def ica_centreline(s: SideAnatomy) -> Centreline:
    """Dense centreline of one ICA (neck → terminal bifurcation) plus short MCA/ACA stubs."""
    sg = s.sign
    ex, ey = s.entry_xy
    ax, ay = s.apex_xy
    xc = s.x_cavernous
    ctrl = np.array([
        (ex - sg * 4.0, ey - 6.0, s.z_canal - 95.0),
        (ex - sg * 1.0, ey - 2.0, s.z_canal - 28.0),
        (ex, ey, s.z_canal - 8.0),
        (ex, ey, s.z_canal),
        (ex, ey, s.z_horizontal),
        (ax, ay, s.z_horizontal + 0.5),
        (ax - sg * 0.5, ay - 0.5, s.z_petrolingual + 1.5),
        (xc, ay - 2.5, s.z_cavernous),
        (xc - sg * 0.5, s.y_genu + 2.5, s.z_cavernous),
        (xc - sg * 1.0, s.y_genu - 1.5, s.z_cavernous + 3.0),
        (xc - sg * 1.5, s.y_genu, s.z_clinoid),
        (xc - sg * 2.0, s.y_genu + 4.0, s.z_clinoid + 5.0),
        (xc - sg * 1.0, s.y_genu + 8.0, s.z_terminal),
    ])
    ica, arc = _resample(_chaikin(ctrl))
    term = ctrl[-1]
    mca, mca_arc = _resample(_chaikin(np.array([term, term + (sg * 12, 2, 1), term + (sg * 24, 7, 3)]), 2))
    aca, aca_arc = _resample(_chaikin(np.array([term, term + (-sg * 6, -4, 2), term + (-sg * 10, -10, 4)]), 2))
    z = ica[:, 2]
    part = np.where(z < s.z_canal, CERVICAL, np.where(z < s.z_petrolingual, PETROUS,
                    np.where(z < s.z_clinoid, CAVERNOUS, SUPRACLINOID))).astype(np.int8)
    lumen = np.interp(z, [s.z_canal - 40, s.z_canal, s.z_petrolingual, s.z_clinoid, s.z_terminal],
                      [2.6, 2.4, 2.25, 2.05, 1.85]) * s.lumen_scale
    n1, n2 = _frames(ica)
    parts = [(ica, arc, part, lumen, n1, n2)]
    for br, br_arc, r in ((mca, mca_arc, 1.3), (aca, aca_arc, 1.0)):
        bn1, bn2 = _frames(br)
        parts.append((br, br_arc, np.full(len(br), BRANCH, np.int8), np.full(len(br), r), bn1, bn2))
    pts = np.vstack([p[0] for p in parts])
    lum = np.concatenate([p[3] for p in parts])
    return Centreline(points=pts, lumen_r=lum, outer_r=lum + s.wall_mm, part=np.concatenate([p[2] for p in parts]),
                      arc=np.concatenate([p[1] for p in parts]), n1=np.vstack([p[4] for p in parts]),
                      n2=np.vstack([p[5] for p in parts]), canal_r=lum + s.wall_mm + s.canal_gap_mm)


def crossing_point(c: Centreline, z: float) -> np.ndarray:
    """Head-frame point where the ICA (not the branches) first reaches height ``z`` (interpolated)."""
    ica = c.points[c.part != BRANCH]
    k = int(np.searchsorted(ica[:, 2], z))
    k = min(max(k, 1), len(ica) - 1)
    a, b = ica[k - 1], ica[k]
    t = 0.0 if b[2] == a[2] else float(np.clip((z - a[2]) / (b[2] - a[2]), 0, 1))
    return a + t * (b - a)
