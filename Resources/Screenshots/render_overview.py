"""Render ``overview.png`` (the extension's screenshot for the Extensions Index) from a real IACSeg result.

    iacseg phantom -o DIR --seed 70101
    iacseg segment DIR/phantom_70101/ct.nii.gz -o DIR/result --device cpu
    python Resources/Screenshots/render_overview.py DIR/phantom_70101/ct.nii.gz DIR/result Resources/Screenshots/overview.png

Left: a 3D view rendered offscreen with VTK (bone surface of the skull base, the calcifications as surfaces coloured
by ICA segment, the six landmark points and their axial planes). Right: an axial slice and a coronal slab through
both ICAs with the segments' colours and the landmark heights, and the per-segment measures of ``report.json``.
Everything is read from the engine's outputs (``calcifications.nii.gz``, ``landmarks.mrk.json``, ``report.json``).
Radiological convention in the slices (the patient's left on the image's right). Needs vtk (offscreen: EGL/OSMesa)
and matplotlib; not part of the extension package.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from iacseg.core.contracts import LANDMARK_KINDS, LANDMARKS, SEGMENT_COLORS, SEGMENTS  # noqa: E402

BACKGROUND = "#1b1b1f"
TEXT = "#e8e8e8"
KIND_STYLE = {"carotid_canal": ("#ffffff", "carotid canal"), "petrolingual": ("#00e5ff", "petrolingual"),
              "anterior_clinoid": ("#ff4dff", "anterior clinoid")}
SIZE_PX = (1600, 900)
DPI = 100


def load(ct_path: Path, result: Path):
    ct_image = sitk.ReadImage(str(ct_path))
    ct = sitk.GetArrayFromImage(ct_image).astype(np.float32)  # [k, j, i]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(result / "calcifications.nii.gz"))).astype(np.int16)
    if labels.shape != ct.shape:
        raise SystemExit("labels and CT differ in shape")
    markups = json.loads((result / "landmarks.mrk.json").read_text())["markups"][0]
    landmarks = {p["label"]: np.array(p["position"], float) for p in markups["controlPoints"]}  # LPS mm
    report = json.loads((result / "report.json").read_text())
    origin, spacing = np.array(ct_image.GetOrigin()), np.array(ct_image.GetSpacing())
    if not np.allclose(np.array(ct_image.GetDirection()).reshape(3, 3), np.eye(3)):
        raise SystemExit("this renderer expects an axial LPS grid (identity direction)")
    return ct, labels, landmarks, report, origin, spacing


def box(labels: np.ndarray, landmarks: dict, origin, spacing, margin_mm=(28.0, 22.0, 14.0)):
    """Index box (k, j, i slices) around the calcifications and the landmarks."""
    pts = [np.argwhere(labels > 0)[:, ::-1] * spacing + origin] if labels.any() else []
    pts.append(np.array(list(landmarks.values())))
    pts = np.concatenate(pts)
    lo = np.floor((pts.min(0) - margin_mm - origin) / spacing).astype(int)
    hi = np.ceil((pts.max(0) + margin_mm - origin) / spacing).astype(int) + 1
    shape_ijk = np.array(labels.shape[::-1])
    lo, hi = np.clip(lo, 0, shape_ijk - 1), np.clip(hi, 1, shape_ijk)
    return slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])


# -- 3D view (VTK, offscreen) ---------------------------------------------------------------------------------------

def render_3d(ct, labels, landmarks, origin, spacing, size) -> np.ndarray:
    import vtk
    from vtk.util import numpy_support

    def image(array, dtype):
        data = vtk.vtkImageData()
        k, j, i = array.shape
        data.SetDimensions(i, j, k)
        data.SetSpacing(*spacing)
        data.SetOrigin(*origin)
        data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True,
                                                                  array_type=dtype))
        return data

    def actor(poly_port, color, opacity=1.0, specular=0.3):
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(poly_port)
        mapper.ScalarVisibilityOff()
        act = vtk.vtkActor()
        act.SetMapper(mapper)
        act.GetProperty().SetColor(*color)
        act.GetProperty().SetOpacity(opacity)
        act.GetProperty().SetSpecular(specular)
        act.GetProperty().SetSpecularPower(20)
        return act

    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.11, 0.11, 0.14)
    renderer.SetBackground2(0.30, 0.32, 0.42)
    renderer.GradientBackgroundOn()
    # no depth peeling: with Mesa's EGL offscreen it drops every translucent actor

    # bone of the skull base only: from below the lowest landmark to just above the highest calcification
    ks, js, is_ = box(labels, landmarks, origin, spacing, margin_mm=(30.0, 30.0, 10.0))
    top = int(np.argwhere(labels > 0)[:, 0].max()) + int(round(6.0 / spacing[2])) if labels.any() else ks.stop
    ks = slice(ks.start, min(max(top, ks.start + 2), ks.stop))
    crop_origin = origin + spacing * np.array([is_.start, js.start, ks.start])
    bone = image(ct[ks, js, is_].astype(np.int16), vtk.VTK_SHORT)
    bone.SetOrigin(*crop_origin)
    smooth = vtk.vtkImageGaussianSmooth()
    smooth.SetInputData(bone)
    smooth.SetStandardDeviations(1.0, 1.0, 0.6)
    surface = vtk.vtkFlyingEdges3D()
    surface.SetInputConnection(smooth.GetOutputPort())
    surface.SetValue(0, 350)
    renderer.AddActor(actor(surface.GetOutputPort(), (0.93, 0.89, 0.80), opacity=0.18, specular=0.1))

    lab = image(labels[ks, js, is_].astype(np.int16), vtk.VTK_SHORT)
    lab.SetOrigin(*crop_origin)
    for value in sorted(SEGMENTS):
        if not (labels == value).any():
            continue
        threshold = vtk.vtkImageThreshold()
        threshold.SetInputData(lab)
        threshold.ThresholdBetween(value, value)
        threshold.SetInValue(1)
        threshold.SetOutValue(0)
        blur = vtk.vtkImageGaussianSmooth()
        blur.SetInputConnection(threshold.GetOutputPort())
        blur.SetStandardDeviations(0.8, 0.8, 0.5)
        iso = vtk.vtkFlyingEdges3D()
        iso.SetInputConnection(blur.GetOutputPort())
        iso.SetValue(0, 0.3)
        renderer.AddActor(actor(iso.GetOutputPort(), SEGMENT_COLORS[value], specular=0.5))

    for name in LANDMARKS:
        side, kind = name.split("_", 1)
        color = matplotlib.colors.to_rgb(KIND_STYLE[kind][0])
        sphere = vtk.vtkSphereSource()
        sphere.SetCenter(*landmarks[name])
        sphere.SetRadius(1.6)
        sphere.SetThetaResolution(24)
        sphere.SetPhiResolution(24)
        renderer.AddActor(actor(sphere.GetOutputPort(), color, specular=0.6))
        plane = vtk.vtkPlaneSource()  # the landmark's axial plane, 26 mm square around the point
        x, y, z = landmarks[name]
        plane.SetOrigin(x - 13, y - 13, z)
        plane.SetPoint1(x + 13, y - 13, z)
        plane.SetPoint2(x - 13, y + 13, z)
        renderer.AddActor(actor(plane.GetOutputPort(), color, opacity=0.22, specular=0.0))

    # Slicer-like camera in LPS: looking from anterior, superior and the patient's right, superior up
    centre = np.mean(np.array(list(landmarks.values())), axis=0) + np.array([0.0, 0.0, -4.0])
    camera = renderer.GetActiveCamera()
    camera.SetFocalPoint(*centre)
    camera.SetPosition(*(centre + np.array([-55.0, -115.0, 105.0])))
    camera.SetViewUp(0.0, 0.0, 1.0)
    camera.SetViewAngle(30)
    renderer.ResetCameraClippingRange()

    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetMultiSamples(8)
    window.AddRenderer(renderer)
    window.SetSize(*size)
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    out = grab.GetOutput()
    width, height, _ = out.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(height, width, 3)
    return pixels[::-1]  # VTK's origin is the bottom-left corner


# -- slices (matplotlib) -------------------------------------------------------------------------------------------

def label_rgba(labels2d: np.ndarray, alpha=0.9) -> np.ndarray:
    rgba = np.zeros(labels2d.shape + (4,))
    for value, color in SEGMENT_COLORS.items():
        rgba[labels2d == value] = (*color, alpha)
    return rgba


def axial_panel(ax, ct, labels, landmarks, origin, spacing, ks, js, is_):
    counts = (labels[ks, js, is_] > 0).sum(axis=(1, 2))
    k = ks.start + int(np.argmax(counts))  # the slice with the most calcified voxels
    window = ct[k, js, is_]
    extent = [origin[0] + spacing[0] * (is_.start - 0.5), origin[0] + spacing[0] * (is_.stop - 0.5),
              origin[1] + spacing[1] * (js.stop - 0.5), origin[1] + spacing[1] * (js.start - 0.5)]
    ax.imshow(window, cmap="gray", vmin=-150, vmax=1300, extent=extent, interpolation="bilinear")
    ax.imshow(label_rgba(labels[k, js, is_]), extent=extent, interpolation="nearest")
    z = origin[2] + spacing[2] * k
    for name, point in landmarks.items():
        if abs(point[2] - z) <= spacing[2]:
            ax.plot(point[0], point[1], "o", mfc="none", mec=KIND_STYLE[name.split("_", 1)[1]][0], ms=9, mew=1.5)
    ax.set_title(f"Axial z = {z:.0f} mm, most calcified slice", color=TEXT, fontsize=11, loc="left")
    ax.text(extent[0] + 2, extent[3] + 4, "R", color=TEXT, fontsize=11, va="top")
    ax.text(extent[1] - 2, extent[3] + 4, "L", color=TEXT, fontsize=11, va="top", ha="right")


def coronal_panel(ax, ct, labels, landmarks, origin, spacing, ks, js, is_):
    # thin slab through the calcifications (± 3 mm): mean CT (bone edges stay readable), front-most label
    calc = np.argwhere(labels > 0)
    jj = calc[:, 1] if len(calc) else np.array([(p[1] - origin[1]) / spacing[1] for p in landmarks.values()])
    pad = int(round(3.0 / spacing[1]))
    slab = slice(max(int(jj.min()) - pad, 0), int(jj.max()) + pad + 1)
    mip = ct[ks, slab, is_].mean(axis=1)
    lab = labels[ks, slab, is_]
    front = np.where((lab > 0).any(axis=1), np.take_along_axis(lab, (lab > 0).argmax(axis=1)[:, None], 1)[:, 0], 0)
    extent = [origin[0] + spacing[0] * (is_.start - 0.5), origin[0] + spacing[0] * (is_.stop - 0.5),
              origin[2] + spacing[2] * (ks.start - 0.5), origin[2] + spacing[2] * (ks.stop - 0.5)]
    ax.imshow(mip, cmap="gray", vmin=-200, vmax=1100, extent=extent, origin="lower", interpolation="bilinear",
              aspect="equal")
    ax.imshow(label_rgba(front, 1.0), extent=extent, origin="lower", interpolation="nearest", aspect="equal")
    mid = 0.5 * (landmarks["L_carotid_canal"][0] + landmarks["R_carotid_canal"][0])
    for side, (x0, x1) in (("R", (extent[0], mid)), ("L", (mid, extent[1]))):
        for kind in LANDMARK_KINDS:
            color, text = KIND_STYLE[kind]
            z = landmarks[f"{side}_{kind}"][2]
            ax.plot([x0, x1], [z, z], "--", color=color, lw=1.2)
            ax.text(x0 + 1.5 if side == "R" else x1 - 1.5, z + 0.8, f"{side} {text}", color=color, fontsize=8,
                    ha="left" if side == "R" else "right", va="bottom")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_title(f"Coronal {spacing[1] * (slab.stop - slab.start):.0f} mm slab, landmark planes dashed",
                 color=TEXT, fontsize=11, loc="left")


def table_panel(ax, report):
    """report.json's per-segment measures (left) and the landmark colours with the QC status (right)."""
    ax.axis("off")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_autoscale_on(False)  # every position below is in axes fractions
    columns = ((0.35, "volume mm³"), (0.47, "Agatston"), (0.56, "lesions"))
    ax.text(0.0, 1.0, "segment", color=TEXT, fontsize=10.5, fontweight="bold", va="top")
    for x, head in columns:
        ax.text(x, 1.0, head, color=TEXT, fontsize=10.5, fontweight="bold", va="top", ha="right")
    step = 0.094
    rows = [(value, SEGMENTS[value], report["segments"][SEGMENTS[value]]) for value in sorted(SEGMENTS)]
    for n, (value, name, seg) in enumerate(rows + [(None, "total", report["total"])]):
        y = 1.0 - step * (n + 1.3) - (0.02 if value is None else 0.0)
        if value is not None:
            ax.add_patch(Rectangle((0.0, y - 0.03), 0.022, 0.06, color=SEGMENT_COLORS[value]))
        color = TEXT if (value is None or seg["voxel_count"]) else "#808080"
        weight = "bold" if value is None else "normal"
        ax.text(0.032, y, name, color=color, fontsize=10.5, va="center", fontweight=weight)
        for (x, _), text in zip(columns, (f"{seg['volume_mm3']:.1f}", f"{seg['agatston']:.1f}",
                                          f"{seg['lesion_count']}")):
            ax.text(x, y, text, color=color, fontsize=10.5, va="center", ha="right", fontweight=weight)
    ax.text(0.64, 1.0, "landmark planes (L and R)", color=TEXT, fontsize=10.5, fontweight="bold", va="top")
    for n, kind in enumerate(reversed(LANDMARK_KINDS)):
        color, text = KIND_STYLE[kind]
        y = 1.0 - step * (n + 1.3)
        ax.plot([0.645], [y], "o", color=color, ms=9)
        part = dict(carotid_canal="cervical", petrolingual="petrous", anterior_clinoid="cavernous")[kind]
        ax.text(0.665, y, f"{text}: top of {part}", color=TEXT, fontsize=10.5, va="center")
    qc = report.get("qc", {}).get("status", "?")
    ax.text(0.64, 1.0 - step * 5.0, f"quality control: {qc}", color="#7CFC98" if qc == "ok" else "#ffcc66",
            fontsize=10.5, va="center")
    ax.text(0.64, 1.0 - step * 6.0, "In the module: drag a landmark or\nreassign a lesion, segments and\n"
            "measures update; Save correction\nstores the edit for retraining.", color="#a8a8a8", fontsize=10,
            va="top", linespacing=1.35)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    ct_path, result, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    ct, labels, landmarks, report, origin, spacing = load(ct_path, result)
    ks, js, is_ = box(labels, landmarks, origin, spacing)

    fig = plt.figure(figsize=(SIZE_PX[0] / DPI, SIZE_PX[1] / DPI), dpi=DPI, facecolor=BACKGROUND)
    fig.text(0.012, 0.962, "IACSeg: intracranial ICA calcification, mapped to cervical / petrous / cavernous / "
             "supraclinoid segments by six landmarks", color=TEXT, fontsize=15, ha="left", va="center")
    fig.text(0.012, 0.922, "Engine result on synthetic phantom 70101 (demo models, trained on phantoms only: not for "
             "clinical use). Slices in radiological convention: the patient's left on the image's right.",
             color="#a8a8a8", fontsize=10, ha="left", va="center")
    grid = fig.add_gridspec(2, 3, width_ratios=[0.96, 0.52, 0.52], height_ratios=[1.0, 0.74], left=0.012,
                            right=0.988, top=0.86, bottom=0.025, wspace=0.06, hspace=0.2)
    ax3d = fig.add_subplot(grid[:, 0])
    ax_axial = fig.add_subplot(grid[0, 1])
    ax_coronal = fig.add_subplot(grid[0, 2])
    ax_table = fig.add_subplot(grid[1, 1:])
    box3d = ax3d.get_position()
    pixels = render_3d(ct, labels, landmarks, origin, spacing,
                       (int(box3d.width * SIZE_PX[0]), int(box3d.height * SIZE_PX[1])))
    ax3d.imshow(pixels)
    ax3d.set_axis_off()
    ax3d.set_title("3D: skull-base bone, calcifications by segment, landmarks with their planes", color=TEXT,
                   fontsize=11, loc="left")
    axial_panel(ax_axial, ct, labels, landmarks, origin, spacing, ks, js, is_)
    coronal_panel(ax_coronal, ct, labels, landmarks, origin, spacing, ks, js, is_)
    for ax in (ax_axial, ax_coronal):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("#555555")
    table_panel(ax_table, report)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, facecolor=BACKGROUND)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
