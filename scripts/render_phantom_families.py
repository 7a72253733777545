"""Render phantom families next to a real head CT, to LOOK at them (one PNG).

For each family and seed: an axial slice through the petrous bones, a coronal slice through the carotid canals
and a sagittal slice through the left ICA, each in a bone window (−200..1800) and a brain window (0..80); the
first row is the real GE head CT of /work/shared/data/dcm_qa_ct_GE (or --real). Planes are resampled in world
coordinates (0.5 mm pixels), so tilted and oblique grids show the anatomy the right way up.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/render_phantom_families.py -o families.png [--seeds 1 2]
        [--families soft bone thick aged classic] [--matrix 512] [--slice-mm 2.5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

HALF_MM, STEP_MM = 110.0, 0.5
WINDOWS = ((-200.0, 1800.0), (0.0, 80.0))


def plane(vol, centre, axis: str) -> np.ndarray:
    """HU on a world plane through ``centre`` (LPS mm): axial (rows +y), coronal/sagittal (rows −z)."""
    t = np.arange(-HALF_MM, HALF_MM + 1e-6, STEP_MM)
    a, b = np.meshgrid(t, t, indexing="ij")      # a: image rows, b: image columns
    c = np.asarray(centre, float)
    if axis == "axial":
        pts = np.stack([c[0] + b, c[1] + a, np.full_like(a, c[2])], -1)
    elif axis == "coronal":
        pts = np.stack([c[0] + b, np.full_like(a, c[1]), c[2] - a], -1)
    else:
        pts = np.stack([np.full_like(a, c[0]), c[1] + b, c[2] - a], -1)
    ijk = vol.grid.world_to_index(pts.reshape(-1, 3))
    vals = ndimage.map_coordinates(vol.hu, [ijk[:, 2], ijk[:, 1], ijk[:, 0]], order=1, cval=-1024.0)
    return vals.reshape(a.shape)


def phantom_centres(ph) -> dict[str, np.ndarray]:
    lm = ph.landmarks
    canal = np.mean([lm[f"{s}_carotid_canal"].position for s in "LR"], axis=0)
    pl = np.mean([lm[f"{s}_petrolingual"].position for s in "LR"], axis=0)
    mid = np.asarray(ph.truth["midsagittal_plane"]["point_lps_mm"])
    axial = np.array([mid[0], mid[1], 0.5 * (canal[2] + pl[2])])
    coronal = np.array([mid[0], canal[1], pl[2] + 10.0])
    sag = np.array([lm["L_carotid_canal"].position[0], mid[1], pl[2] + 10.0])
    return {"axial": axial, "coronal": coronal, "sagittal": sag}


def real_ct(path: Path):
    from iacseg.io import read_ct
    from iacseg.preprocess import to_axial_lps

    vol = to_axial_lps(read_ct(path))
    g = vol.grid
    centre_ijk = np.array([g.shape[2] / 2, g.shape[1] / 2, 14.5])   # slice 14: skull base of this series
    c = g.index_to_world(centre_ijk)
    return vol, {"axial": c, "coronal": c + np.array([0, 10.0, 25.0]), "sagittal": c + np.array([22.0, 0, 25.0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default="phantom_families.png")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--families", nargs="+", default=["soft", "bone", "thick", "aged"])
    ap.add_argument("--matrix", type=int, default=None, help="override the family's matrix (faster looks)")
    ap.add_argument("--slice-mm", type=float, default=None)
    ap.add_argument("--real", default="/work/shared/data/dcm_qa_ct_GE")
    ap.add_argument("--dpi", type=int, default=60)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from iacseg.phantom import make_phantom

    rows = []
    if args.real and Path(args.real).exists():
        vol, cen = real_ct(Path(args.real))
        rows.append(("real GE head CT", vol, cen))
    for fam in args.families:
        for seed in args.seeds:
            t0 = time.time()
            opts = {k: v for k, v in {"matrix": args.matrix, "slice_mm": args.slice_mm}.items() if v is not None}
            ph = make_phantom(seed, family=fam, **opts)
            st = ph.truth.get("style", {})
            k = ph.truth.get("kernel", {}).get("name", "")
            label = (f"{fam} seed {seed}: {ph.ct.shape[1]}² {ph.truth['slice_thickness_mm']:g} mm, {k}, "
                     f"noise {ph.truth['noise_hu']:.0f}, tilt {ph.truth['gantry_tilt_deg']:.0f}, "
                     f"obl {ph.truth.get('oblique_reformat_deg', 0):.0f}, atrophy "
                     f"{st.get('anatomy', {}).get('atrophy', 0):.2f} ({time.time() - t0:.0f} s)")
            print(label, flush=True)
            rows.append((label, ph.ct, phantom_centres(ph)))
    fig, axes = plt.subplots(len(rows), 6, figsize=(24, 4.2 * len(rows)))
    axes = np.atleast_2d(axes)
    for r, (label, vol, cen) in enumerate(rows):
        for a, axis in enumerate(("axial", "coronal", "sagittal")):
            img = plane(vol, cen[axis], axis)
            for w, (lo, hi) in enumerate(WINDOWS):
                ax = axes[r, 2 * a + w]
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if a == 0 and w == 0:
                    ax.set_ylabel(label, fontsize=9)
                if r == 0:
                    ax.set_title(f"{axis} {'bone' if w == 0 else 'brain'}")
    fig.tight_layout()
    fig.savefig(args.output, dpi=args.dpi)
    print(args.output)


if __name__ == "__main__":
    main()
