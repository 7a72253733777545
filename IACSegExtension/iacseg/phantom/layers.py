"""The large, smooth structures of the head (skin to skull base), as painted layers.

A `Layer` is a head-frame bounding box plus a function ``paint(x, y, z, w) -> [(occupancy, HU), ...]`` that is
evaluated only on the part of a slice plane inside its box; the renderer composites the returned pairs in order
(``value += occupancy * (HU - value)``). ``w`` is the edge-ramp width (mm) that gives partial volume.
Small structures that need supersampling (ICA, carotid canal, plaques) live in `vessels`.
"""

from __future__ import annotations


import numpy as np

from . import shapes as S
from .anatomy import AnatomySpec
from .layer import Layer

FAT, MUSCLE, CSF, GREY, WHITE, BLOOD, AIR = -90.0, 45.0, 8.0, 38.0, 29.0, 42.0, -1000.0


def _box(c, r):
    return tuple(c[a] - r[a] for a in range(3)), tuple(c[a] + r[a] for a in range(3))


CLASSIC_TISSUE = {"fat": FAT, "muscle": MUSCLE, "csf": CSF, "grey": GREY, "white": WHITE, "blood": BLOOD}


def build_layers(a: AnatomySpec, head_rest: dict | None) -> list[Layer]:
    """All coarse layers of phantom ``a`` in painting order.

    ``a.variant`` (randomised families) changes tissue HU, the brain (sulci, fissures, nuclei, atrophy),
    pneumatisation (sphenoid, petrous apex, mastoid), sinus mucosa and skull-base flexion; ``None`` paints the
    classic phantom exactly as before.
    """
    L: list[Layer] = []
    v = a.variant
    tis = dict(CLASSIC_TISSUE) if v is None else {k: float(v["tissue"][k]) for k in CLASSIC_TISSUE}
    FAT, MUSCLE, CSF, GREY, WHITE, BLOOD = (tis[k] for k in ("fat", "muscle", "csf", "grey", "white", "blood"))
    va = v["anatomy"] if v is not None else None
    sl, sr = a.sides["L"], a.sides["R"]
    zc = 0.5 * (sl.z_canal + sr.z_canal)
    zh = 0.5 * (sl.z_horizontal + sr.z_horizontal)
    zac = 0.5 * (sl.z_clinoid + sr.z_clinoid)
    zpl = 0.5 * (sl.z_petrolingual + sr.z_petrolingual)
    zcav = 0.5 * (sl.z_cavernous + sr.z_cavernous)
    ex, ey = abs(sl.entry_xy[0]), 0.5 * (sl.entry_xy[1] + sr.entry_xy[1])
    yg = 0.5 * (sl.y_genu + sr.y_genu)
    hx, hy = a.sphenoid_half
    rx, ry, rz = a.skull_radii
    cx, cy, cz = a.skull_centre
    t = a.vault_mm
    ph = a.texture_phase
    bone = a.bone_hu
    z_bottom = zc - 130.0
    face_c, face_r = (0.0, -25.0, zc - 20.0), (60.0 * a.head_scale, 72.0 * a.head_scale, 48.0)
    neck_c, neck_r = (0.0, 14.0), (52.0 * a.head_scale, 50.0)
    sph_bottom, sph_top = zpl - 13.0, zac - 1.5
    sph_c = (0.0, -12.0, 0.5 * (sph_bottom + sph_top))
    sph_h = (hx, a.sphenoid_half[1], 0.5 * (sph_top - sph_bottom))
    sella_c, sella_r = (0.0, -3.5, sph_top + 1.0), 5.5
    pdy, pdz = _flexion_shift(va, zc, zcav)    # posterior skull base (basion, foramen magnum, C1-2) moves
    fm_c, fm_r = (0.0, 46.0 + pdy), 15.0

    # --- skin, subcutaneous fat -------------------------------------------------------------------
    def body_sdf(x, y, z):
        head = S.ellipsoid(x, y, z, (cx, cy, cz), (rx + a.scalp_mm, ry + a.scalp_mm, rz + a.scalp_mm))
        face = S.ellipsoid(x, y, z, face_c, face_r)
        neck = np.maximum(S.ellipse_z(x, y, neck_c, neck_r), z - (zc - 10.0))
        return S.smooth_union(S.smooth_union(head, face, 12.0), neck, 15.0)

    def body(x, y, z, w):
        d = body_sdf(x, y, z)
        return [(S.occupancy(d, w), MUSCLE), (S.occupancy(np.abs(d + 4.5) - 2.5, w), FAT)]

    L.append(Layer("body", (-rx - 10, -140, z_bottom), (rx + 10, cy + ry + 10, cz + rz + 10), body))

    # --- face: orbits, nasal cavity, maxillary sinuses ---------------------------------------------
    for sg in (1.0, -1.0):
        oc = (sg * 31.0, -62.0 * a.head_scale, zac - 14.0)
        L.append(Layer(f"orbit{sg:+.0f}", *_box(oc, (20, 26, 16)), lambda x, y, z, w, oc=oc: [
            (S.occupancy(S.ellipsoid(x, y, z, (oc[0], oc[1] + 6, oc[2]), (16, 20, 13)), w), FAT),
            (S.occupancy(S.sphere(x, y, z, (oc[0], oc[1] - 4, oc[2]), 11.5), w), 12.0)]))
        mc = (sg * 29.0, -42.0 * a.head_scale, sph_bottom - 20.0)
        mu = 0.0 if va is None else float(va["sinus_mucosa_mm"])
        L.append(Layer(f"maxillary{sg:+.0f}", *_box(mc, (15, 17, 17)), lambda x, y, z, w, mc=mc, mu=mu: [
            (S.occupancy(S.ellipsoid(x, y, z, mc, (14, 16, 16)), w), 600.0),
            (S.occupancy(S.ellipsoid(x, y, z, mc, (12.5, 14.5, 14.5)), w), AIR if mu == 0.0 else 30.0),
            *([] if mu == 0.0 else [(S.occupancy(S.ellipsoid(x, y, z, mc, (12.5 - mu, 14.5 - mu, 14.5 - mu)), w),
                                     AIR)])]))
    nc = (0.0, -48.0 * a.head_scale, sph_bottom - 14.0)
    L.append(Layer("nasal", *_box(nc, (14, 24, 16)), lambda x, y, z, w: [
        (S.occupancy(S.box(x, y, z, nc, (13, 22, 14), 4.0), w), AIR),
        (S.occupancy(S.box(x, y, z, nc, (1.0, 20, 13), 0.5), w), 350.0)]))

    # --- cranium: skull vault and base plate, brain ------------------------------------------------
    da = a.anterior_floor_offset

    def floor(x, y):
        """Height (head frame) of the cranial floor: anterior fossa, middle-fossa bowls, posterior-fossa bowls."""
        ax = np.abs(x)
        za = zac + da + 0.22 * np.maximum(ax - 12.0, 0.0) + 0.006 * (y + 40.0) ** 2
        zm = zh - 4.0 + 0.012 * (ax - 38.0) ** 2 + 0.015 * (y + 2.0) ** 2
        zp = (zc + pdz) - 16.0 + 0.01 * (ax - 28.0) ** 2 + 0.01 * (y - (55.0 + pdy)) ** 2
        w1 = S.smoothstep((y + 25.0 + 0.35 * np.maximum(ax - 15.0, 0.0)) / 6.0)
        y_ridge = ey + 8.0 + 0.5 * (ax - ex)
        w2 = S.smoothstep((y - y_ridge + 4.0) / 8.0)
        f = za + (zm - za) * w1
        return f + (zp - f) * w2

    def cranium(x, y, z, w):
        f = floor(x, y)
        outer = S.ellipsoid(x, y, z, (cx, cy, cz), (rx, ry, rz))
        inner = S.ellipsoid(x, y, z, (cx, cy, cz), (rx - t, ry - t, rz - t))
        cavity = np.maximum(inner, f - z)
        fm = np.maximum(S.ellipse_z(x, y, fm_c, (fm_r, fm_r)), z - ((zc + pdz) - 5.0))
        skull = np.maximum(np.maximum(np.maximum(outer, f - 3.5 - z), -cavity), -fm)
        diploe = np.maximum(np.maximum(outer + 1.8, 1.5 - inner), f + 3.0 - z)
        white = np.maximum(cavity + 5.0, zac + 14.0 - z)
        tex = S.texture(x, y, z, 1.7, ph)
        return [(S.occupancy(skull, w), bone["cortical"]), (S.occupancy(diploe, w), bone["diploe"] + 150.0 * tex),
                (S.occupancy(cavity, w), CSF), (S.occupancy(cavity + 1.8, w), GREY), (S.occupancy(white, 2.5), WHITE)]

    brain_extra: list[Layer] = []
    if va is not None:
        from .brain import variant_cranium
        clivus = ((0.0, 4.0, zcav - 2.0), (0.0, 31.0 + pdy, zc + pdz - 14.0))
        cranium, brain_extra = variant_cranium(a, floor, (fm_c, fm_r, zc + pdz), tis, zac, clivus)  # noqa: F811
    L.append(Layer("cranium", (cx - rx, cy - ry, zc - 60), (cx + rx, cy + ry, cz + rz), cranium))
    L.extend(brain_extra)

    # --- CSF spaces ---------------------------------------------------------------------------------
    vent = [((7.0, 2.0, zac + 30.0), (6.0, 20.0, 7.0)), ((-7.0, 2.0, zac + 30.0), (6.0, 20.0, 7.0)),
            ((0.0, 4.0, zac + 17.0), (1.6, 9.0, 7.0)), ((0.0, 36.0, zc + 6.0), (5.0, 3.0, 6.0)),
            ((0.0, yg + 7.0, zac + 6.0), (abs(sl.x_cavernous) + 4.0, 11.0, 6.0))]
    if va is not None:
        from .brain import atrophic_ventricles
        vent = atrophic_ventricles(vent, float(va["atrophy"]))
    for n, (c, r) in enumerate(vent):
        L.append(Layer(f"csf{n}", *_box(c, r), lambda x, y, z, w, c=c, r=r: [
            (S.occupancy(S.ellipsoid(x, y, z, c, r), w), CSF)]))
    # spinal canal and cord through the foramen magnum
    zfm = zc + pdz
    L.append(Layer("spinal", (-fm_r, fm_c[1] - fm_r, z_bottom), (fm_r, fm_c[1] + fm_r, zfm - 4), lambda x, y, z, w: [
        (S.occupancy(S.cylinder_z(x, y, z, fm_c, (fm_r - 2, fm_r - 2), z_bottom, zfm - 5.0), w), CSF),
        (S.occupancy(S.cylinder_z(x, y, z, (0.0, fm_c[1] - 2), (7.0, 6.0), z_bottom, zfm - 5.0), w), 35.0)]))

    # --- cavernous sinuses (venous blood beside the sphenoid body) ---------------------------------
    for sd in (sl, sr):
        c = (sd.x_cavernous + sd.sign * 1.0, 0.5 * (sd.apex_xy[1] + sd.y_genu), sd.z_cavernous + 1.0)
        r = (5.5, 0.5 * abs(sd.apex_xy[1] - sd.y_genu) + 4.0, 7.0)
        L.append(Layer(f"cavernous_sinus_{sd.side}", *_box(c, r), lambda x, y, z, w, c=c, r=r: [
            (S.occupancy(S.ellipsoid(x, y, z, c, r), w), 44.0 if va is None else BLOOD + 2.0)]))

    # --- sphenoid body, sinus, sella, dorsum, clivus -----------------------------------------------
    sinus_wall = 1.8 if va is None else float(np.clip(1.8 + 7.0 * (0.9 - va["sphenoid_air"]), 1.0, 7.0))

    def sphenoid(x, y, z, w):
        body_d = S.box(x, y, z, sph_c, sph_h, 5.0)
        sella = S.sphere(x, y, z, sella_c, sella_r)
        sinus = np.maximum(body_d + sinus_wall, -(sella - 1.2))
        septum = np.maximum(S.box(x, y, z, (a.septum_x, sph_c[1], sph_c[2]), (0.7, sph_h[1], sph_h[2]), 0.3),
                            body_d + 1.0)
        tex = S.texture(x, y, z, 1.5, ph)
        return [(S.occupancy(body_d, w), bone["sphenoid"] + 150 * tex), (S.occupancy(sinus, w), AIR),
                (S.occupancy(septum, w), bone["sphenoid"] * 0.7), (S.occupancy(sella, w), 45.0)]

    if va is not None:
        from .skull_base import sphenoid_paint
        sphenoid = sphenoid_paint(sph_c, sph_h, sella_c, sella_r, a.septum_x, sinus_wall, bone["sphenoid"], ph, va)
    L.append(Layer("sphenoid", *_box(sph_c, (hx + 1, sph_h[1] + 1, sph_h[2] + 8)), sphenoid))
    dorsum_c = (0.0, 3.0, 0.5 * (zcav + zac + 5.0))
    dorsum_h = (7.0, 1.6, 0.5 * (zac + 5.0 - zcav))
    L.append(Layer("dorsum", *_box(dorsum_c, (8, 3, dorsum_h[2] + 1)), lambda x, y, z, w: [
        (S.occupancy(S.box(x, y, z, dorsum_c, dorsum_h, 1.0), w), bone["sphenoid"])]))
    top, basion = np.array([0.0, 4.0, zcav - 2.0]), np.array([0.0, 31.0 + pdy, zc + pdz - 14.0])
    cl_c, cl_rot = 0.5 * (top + basion), S.rotation_from_axis(basion - top)
    cl_h = (11.0, 0.5 * float(np.linalg.norm(basion - top)), 4.5)
    clivus_fn = lambda x, y, z, w: [  # noqa: E731
        (S.occupancy(S.box(x, y, z, tuple(cl_c), cl_h, 2.0, cl_rot), w),
         bone["sphenoid"] + 120 * S.texture(x, y, z, 1.4, ph))]
    if va is not None:
        from .skull_base import clivus_paint
        clivus_fn = clivus_paint(tuple(cl_c), cl_h, cl_rot, bone["sphenoid"], ph)
    L.append(Layer("clivus", (-12, top[1] - 6, basion[2] - 6), (12, basion[1] + 6, top[2] + 6), clivus_fn))

    # --- petrous bones (per side) with the bony collar around the carotid canal --------------------
    for sd in (sl, sr):
        L.extend(_petrous_layers(sd, bone["petrous"], ph, None if va is None else va))

    # --- anterior clinoid processes: flat top exactly at z_clinoid -------------------------------------
    for sd in (sl, sr):
        sg, xc = sd.sign, sd.x_cavernous
        base = (xc + sg * 8.5, sd.y_genu - 7.0, sd.z_clinoid - 2.2)
        tip = (xc + sg * 6.2, sd.y_genu + 3.5, sd.z_clinoid - 2.2)
        zt = sd.z_clinoid
        L.append(Layer(f"clinoid_{sd.side}", (min(base[0], tip[0]) - 4, base[1] - 4, zt - 6),
                       (max(base[0], tip[0]) + 4, tip[1] + 4, zt + 1), lambda x, y, z, w, b=base, tp=tip, zt=zt: [
            (S.occupancy(np.maximum(S.capsule(x, y, z, b, tp, 3.0, 2.5), z - zt), w), bone["clinoid"])]))

    # --- mastoids and external auditory canals ----------------------------------------------------
    for sd in (sl, sr):
        sg = sd.sign
        mc = (sd.entry_xy[0] + sg * 19.0, sd.entry_xy[1] + 12.0, sd.z_canal - 1.0)
        ea, eb = (sd.entry_xy[0] + sg * 22.0, sd.entry_xy[1] + 1.0, sd.z_canal + 8.0), \
            (sd.entry_xy[0] + sg * 50.0, sd.entry_xy[1] + 1.0, sd.z_canal + 8.0)
        mastoid_fn = lambda x, y, z, w, mc=mc: [  # noqa: E731
            (S.occupancy(S.ellipsoid(x, y, z, mc, (10, 13, 10)), w), 900.0),
            (S.occupancy(S.ellipsoid(x, y, z, mc, (8.5, 11.5, 8.5)), w),
             -250.0 + 500.0 * S.texture(x, y, z, 2.2, ph))]
        if va is not None:
            from .skull_base import mastoid_paint
            mastoid_fn = mastoid_paint(mc, float(va["mastoid_air"]), ph, _cell_seed(va, sd.side, 1))
        L.append(Layer(f"mastoid_{sd.side}", *_box(mc, (11, 14, 11)), mastoid_fn))
        L.append(Layer(f"ear_canal_{sd.side}", (min(ea[0], eb[0]) - 4, ea[1] - 4, ea[2] - 4),
                       (max(ea[0], eb[0]) + 4, ea[1] + 4, ea[2] + 4), lambda x, y, z, w, ea=ea, eb=eb: [
            (S.occupancy(S.capsule(x, y, z, ea, eb, 3.0), w), AIR)]))

    # --- neck: vertebrae, pharynx, carotid space fat, jugular veins, external carotids --------------
    vb = (0.0, 28.0 + pdy)
    L.append(Layer("vertebra", (-16, 14 + pdy, z_bottom), (16, 42 + pdy, zfm - 13), lambda x, y, z, w: [
        (S.occupancy(S.cylinder_z(x, y, z, vb, (14, 11), z_bottom, zfm - 14.0), w), 850.0),
        (S.occupancy(S.cylinder_z(x, y, z, vb, (12.5, 9.5), z_bottom, zfm - 15.5), w),
         230.0 + 60 * S.texture(x, y, z, 1.8, ph))]))
    L.append(Layer("c1_arch", (-24, 24 + pdy, zfm - 32), (24, 70 + pdy, zfm - 16), lambda x, y, z, w: [
        (S.occupancy(np.maximum(np.abs(S.cylinder_z(x, y, z, fm_c, (18.5, 18.5), zfm - 30, zfm - 18)) - 2.5,
                                (35.0 + pdy) - y), w), 750.0)]))
    L.append(Layer("pharynx", (-15, -7, z_bottom), (15, 11, sph_bottom), lambda x, y, z, w: [
        (S.occupancy(S.cylinder_z(x, y, z, (0.0, 2.0), (13.0, 7.0), z_bottom, sph_bottom - 4.0), w), AIR)]))
    for sd in (sl, sr):
        sg, (x0, y0) = sd.sign, sd.entry_xy
        ztop = sd.z_canal - 3.0
        L.append(Layer(f"carotid_space_{sd.side}", (x0 - 14, y0 - 14, z_bottom), (x0 + 14, y0 + 14, ztop),
                       lambda x, y, z, w, x0=x0, y0=y0, sg=sg, ztop=ztop: [
            (S.occupancy(S.cylinder_z(x, y, z, (x0 + sg * 2, y0 - 2), (11, 10), z_bottom, ztop), w), FAT),
            (S.occupancy(S.cylinder_z(x, y, z, (x0 + sg * 8, y0 + 6), (5.5, 5.0), z_bottom, ztop), w), BLOOD),
            (S.occupancy(S.cylinder_z(x, y, z, (x0 - sg * 1, y0 - 9), (2.0, 2.0), z_bottom, ztop - 8), w), BLOOD)]))

    # --- head rest (scanner frame, not moving with the head) ----------------------------------------
    if head_rest is not None:
        hr = head_rest
        yc, r_in, thick = hr["centre_y"], hr["radius_mm"], hr["thickness_mm"]

        def rest(x, y, z, w):
            rr = np.sqrt(x * x + (y - yc) ** 2)
            d = np.maximum(np.abs(rr - r_in - 0.5 * thick) - 0.5 * thick, hr["cos_limit"] * rr - (y - yc))
            return [(S.occupancy(d, w), hr["hu"])]

        L.append(Layer("head_rest", (-r_in - thick, yc, -1e4), (r_in + thick, yc + r_in + thick, 1e4), rest,
                       world=True))
    return L


def _cell_seed(va: dict, side: str, which: int) -> int:
    """Deterministic seed of one structure's air cells from the style's texture phases."""
    return int(abs(va["texture_phase"][0]) * 1e6) * 10 + which * 2 + (side == "R")


def _flexion_shift(va: dict | None, zc: float, zcav: float) -> tuple[float, float]:
    """(dy, dz) mm by which the basion moves when the clivus turns ``flexion_deg`` about the dorsum (0, 0 classic)."""
    if va is None or not va.get("flexion_deg"):
        return 0.0, 0.0
    t = np.radians(float(va["flexion_deg"]))
    ry, rz = 31.0 - 4.0, (zc - 14.0) - (zcav - 2.0)
    return float(ry * np.cos(t) - rz * np.sin(t) - ry), float(ry * np.sin(t) + rz * np.cos(t) - rz)


def _petrous_layers(sd, hu: float, ph, va: dict | None = None) -> list[Layer]:
    """Petrous pyramid + bone collar around the vertical canal (flat bottom at z_canal) + apex collar (flat top
    at z_petrolingual). The canal itself is carved by the vessel renderer. ``va["petrous_air"]`` (families)
    adds air cells inside the pyramid, at least 1.2 mm inside its surface and clear of the canal's collars."""
    e = np.array([*sd.entry_xy, sd.z_canal])
    g = np.array([*sd.entry_xy, sd.z_horizontal])
    ap = np.array([*sd.apex_xy, sd.z_horizontal])
    u = (ap - g) / np.linalg.norm(ap - g)
    p_lat = g - 22.0 * u + np.array([0.0, 0.0, 3.0])
    p_apex = ap - 5.0 * u
    rc = 2.4 * sd.lumen_scale + sd.wall_mm + sd.canal_gap_mm
    zc, zpl, zh = sd.z_canal, sd.z_petrolingual, sd.z_horizontal
    air = 0.0 if va is None else float(va.get("petrous_air", 0.0))
    if air > 0.0:
        from .skull_base import AirCells
        mid = 0.5 * (p_lat + p_apex)
        half = 0.5 * np.abs(p_apex - p_lat) + 10.5
        air_cells = AirCells(mid, tuple(half), 3.0, 0.15 + 0.7 * air, _cell_seed(va, sd.side, 2))

    def pyramid(x, y, z, w):
        s = (x - e[0]) * u[0] + (y - e[1]) * u[1]
        bottom = zc + 0.1 * np.maximum(s, 0) + 0.3 * np.maximum(-s, 0)
        d = np.maximum(S.capsule(x, y, z, tuple(p_lat), tuple(p_apex), 10.5, 5.0), bottom - z)
        collar = S.cylinder_z(x, y, z, (e[0], e[1]), (rc + 3.5, rc + 3.5), zc, zh + 2.0)
        ring = S.cylinder_z(x, y, z, (ap[0], ap[1]), (rc + 2.3, rc + 2.3), zh - 4.5, zpl)
        d = np.minimum(np.minimum(d, collar), ring)
        out = [(S.occupancy(d, w), hu + 120.0 * S.texture(x, y, z, 1.3, ph))]
        if air > 0.0:
            keep = np.minimum(np.minimum(S.capsule(x, y, z, tuple(e), tuple(g), rc + 4.0),
                                         S.capsule(x, y, z, tuple(g), tuple(ap), rc + 4.0)),
                              S.capsule(x, y, z, tuple(ap), (ap[0], ap[1], zpl + 2.0), rc + 3.5))
            cells = np.maximum(np.maximum(d + 1.2, -keep), bottom + 1.5 - z)
            if np.any(cells < 1.0):
                cells = np.maximum(cells, air_cells.sdf(x, y, z))
                out.append((S.occupancy(cells, w), AIR))
        return out

    lo = np.minimum.reduce([p_lat - 13, p_apex - 7, e - rc - 4])
    hi = np.maximum.reduce([p_lat + 13, p_apex + 7, e + rc + 4, np.array([*ap[:2], zpl]) + rc + 3])
    lo[2] = zc - 1.0
    return [Layer(f"petrous_{sd.side}", tuple(lo), tuple(hi), pyramid)]
