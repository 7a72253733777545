"""Reader corrections in the Slicer module on real MRML (slicer-core) at 512×512×300: time from the reader's action
to updated segments and tables (target ≤ 100 ms), current code vs the old whole-segment path, measured in one run.

The case: a 512×512×300 CT (0.45 × 0.45 × 0.6 mm) with calcified lesions along both ICAs, written as the engine's
output files (``calcifications.seg.nrrd`` and the rest) and shown by the module's own ``IACSegLogic.showResult``
in a real slicer-core scene (Slicer's readers; ``IACSegModule/Testing/slicercore_env.py``); the review panel is
``IACSegLib.review_panel.ReviewPanel`` with the .ui's widgets played by ``slicer_stand_ins.FakeUI`` (no Qt here).

Timed, per action, from the panel handler to the segmentation, points, planes, measures and lesion tables updated:

* landmark move: a slice typed in a slice box (``editingFinished``), and a point moved from the control-point
  table / Python (``PointModifiedEvent``); each alternates between two slices a few mm apart;
* lesion reassign (two segments alternately), lesion delete, and lesion add: *Add painted lesion* after a blob was
  painted in a "missed" segment (in the calcium's shared layer, where the Segment Editor paints a new segment).

Baseline, the same actions in the same run with the code before the fix: the whole label map re-mapped and compared,
every changed segment re-imported whole (``slicer.util.updateSegmentBinaryLabelmapFromArray``: the shared labelmap
splits into layers), the painted segment exported whole, and the measures computed on the whole grid with the
engine's earlier Agatston peak (``ndimage.maximum``). Prints medians (ms), ratios and the layer count after each
path, and checks that the segmentation equals the review session's labels voxel for voxel. No pytest needed (about
a minute on 2 CPU cores, 3 GB of memory):

    .venv/bin/python benchmarks/slicer_correction.py [--repeats 7] [--baseline-repeats 3] [--lesions 30]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "IACSegModule"
sys.path[:0] = [str(MODULE), str(MODULE / "Testing")]

SHAPE = (300, 512, 512)  # k, j, i
SPACING = (0.45, 0.45, 0.6)  # i, j, k mm
HEIGHTS = {"L_carotid_canal": -60.0, "L_petrolingual": -40.0, "L_anterior_clinoid": -20.0,
           "R_carotid_canal": -58.0, "R_petrolingual": -41.0, "R_anterior_clinoid": -18.0}


def build_case(root: Path, lesions_per_side: int, seed: int):
    """Write the CT and the engine's output folder; returns (CT path, output folder, painted blobs for "add")."""
    from iacseg.core.plane import MidsagittalPlane
    from iacseg.core.grid import Grid
    from iacseg.io.writers import write_image
    from iacseg.measure import measure_case
    from iacseg.core.landmarks import Landmark
    from iacseg.outputs.report import build_report
    from iacseg.outputs.writer import write_case_outputs
    from iacseg.relabel import relabel_arrays

    grid = Grid(SHAPE, SPACING, (-115.0, -115.0, -90.0))
    rng = np.random.default_rng(seed)
    hu = np.full(SHAPE, -1000, np.int16)
    hu[:, 96:416, 96:416] = 35  # the head
    mask = np.zeros(SHAPE, bool)
    zz, yy, xx = np.mgrid[-3:4, -3:4, -3:4]

    def blob(k: int, j: int, i: int):
        r = rng.uniform(1.0, 3.2, 3)
        kk, jj, ii = np.nonzero((zz / r[0]) ** 2 + (yy / r[1]) ** 2 + (xx / r[2]) ** 2 <= 1.0)
        return kk + k - 3, jj + j - 3, ii + i - 3

    def on_ica(i0: int, k: int) -> tuple[int, int]:
        return i0 + int(12 * np.sin(k / 40.0)) + int(rng.integers(-2, 3)), 256 + int(20 * np.cos(k / 30.0))

    for i0 in (312, 200):  # patient left (LPS x > 0), right
        for k in np.linspace(20, 280, lesions_per_side).astype(int):
            i, j = on_ica(i0, int(k))
            kji = blob(int(k), j, i)
            mask[kji] = True
            hu[kji] = rng.integers(150, 900)
    painted = []
    for k in (60, 120, 180, 240, 90, 150, 210, 270, 45, 135):
        i, j = on_ica(312, k)
        m = np.zeros(SHAPE, bool)
        m[blob(k, j + 14, i)] = True  # beside the artery: not calcified yet
        painted.append(m)
    plane = MidsagittalPlane((0.0, 0.0, 0.0), (1.0, 0.0, 0.0))
    landmarks = {}
    for name, z in HEIGHTS.items():
        k = (z - grid.origin[2]) / SPACING[2] + 0.5  # the engine's convention: plane between two slices
        landmarks[name] = Landmark(name, z, (25.0 if name[0] == "L" else -25.0, 0.0, z), slice=k, confidence=0.9)
    labels = relabel_arrays(mask, grid, plane, landmarks)
    report = build_report(measures=measure_case(labels, hu, grid), landmarks=landmarks, plane=plane, grid=grid,
                          models={"segmenter": {"name": "benchmark", "version": "1", "sha256": "0" * 64}})
    folder = write_case_outputs(root / "result", labels=labels, grid=grid, landmarks=landmarks, report=report)
    ct = write_image(root / "ct.nrrd", hu, grid, compress=False)
    return ct, folder, painted


def old_agatston_by_label(labels, hu, spacing, n_labels=8):
    """`iacseg.measure.agatston.agatston_by_label` before this change (peak HU by ``ndimage.maximum``, which sorts
    the whole crop): the baseline's measures."""
    from scipy import ndimage

    from iacseg.measure.agatston import _IN_PLANE_8, MIN_LESION_AREA_MM2, REFERENCE_SLICE_MM, density_weight

    si, sj, sk = (float(s) for s in spacing)
    labels = np.asarray(labels)
    components, n = ndimage.label(labels > 0, structure=_IN_PLANE_8)
    out = np.zeros(n_labels + 1, dtype=np.float64)
    if n == 0:
        return out
    peak = np.asarray(ndimage.maximum(np.asarray(hu, dtype=np.float64), components, np.arange(1, n + 1)))
    in_lesion = components > 0
    counts = np.bincount(components[in_lesion].astype(np.int64) * (n_labels + 1)
                         + labels[in_lesion].astype(np.int64), minlength=(n + 1) * (n_labels + 1))
    counts = counts.reshape(n + 1, n_labels + 1)[1:]
    area = counts.sum(axis=1) * si * sj
    weight = density_weight(peak) * (area >= MIN_LESION_AREA_MM2 - 1e-9)
    out += (counts * si * sj * weight[:, None]).sum(axis=0)
    out[0] = 0.0
    return out * (sk / REFERENCE_SLICE_MM)


@contextlib.contextmanager
def old_path(logic):
    """The code before the fix: whole-grid mapping and comparison, whole-segment imports, whole-grid measures."""
    import iacseg.measure.case as case_module
    from iacseg.mapping.sparse import flat_nonzero
    from iacseg.measure import measure_case
    from iacseg.relabel import relabel_arrays
    from IACSegLib import review_panel, scene

    session = logic.session

    def apply_correction(correct) -> int:
        before = session.labels.copy()  # the old session made a new label map per correction
        correct(session)
        relabel_arrays(session.labels > 0, session.grid, session.plane, session.landmarks)  # its whole-grid mapping
        changed = before != session.labels
        values = set(before[changed].tolist()) | set(session.labels[changed].tolist())
        scene.update_segments(logic.segmentationNode, logic.volumeNode, session.labels, values - {0})
        scene.set_landmark_points(logic.markupsNode, session.landmarks)
        logic.planes = scene.landmark_planes(session.landmarks, logic.volumeNode, logic.planes)
        return int(changed.sum())

    saved = case_module.agatston_by_label, review_panel.painted_voxels, review_panel.write_labels
    case_module.agatston_by_label = old_agatston_by_label
    review_panel.write_labels = lambda *args: []  # the old Add painted lesion rewrote nothing after the add
    review_panel.painted_voxels = lambda node, segment_id, volume: flat_nonzero(  # the painted segment exported whole
        scene.painted_array(node, segment_id, volume))
    logic.applyCorrection = apply_correction
    session.measures = lambda hu: measure_case(session.labels, hu, session.grid)
    try:
        yield
    finally:
        case_module.agatston_by_label, review_panel.painted_voxels, review_panel.write_labels = saved
        del logic.applyCorrection, session.measures


class Bench:
    def __init__(self, panel, logic, painted) -> None:
        self.panel, self.logic, self.ui, self.painted = panel, logic, panel.ui, list(painted)
        self.session = logic.session
        lesions = sorted(range(1, self.session.lesion_count + 1), key=lambda n: -self.session.lesion_voxels(n).size)
        self.to_reassign, self.to_delete = lesions[0], lesions[1:]
        self.flip = 0

    def timed(self, action) -> float:
        prepare = getattr(action, "prepare", None)
        if prepare is not None:  # what the reader did before the timed action (e.g. paint in the Segment Editor)
            prepare()
        edits = len(self.session.edits)
        t0 = time.perf_counter()
        action()
        ms = (time.perf_counter() - t0) * 1000.0
        if len(self.session.edits) != edits + 1:
            raise RuntimeError(f"the action was not applied: {self.ui.progressLabel.text}")
        return ms

    def type_slice(self) -> None:
        self.flip ^= 1
        box = self.ui.L_petrolingualSpinBox
        box.value = int(round((HEIGHTS["L_petrolingual"] + 90.0) / SPACING[2])) + (6 if self.flip else -6)
        box.slots["editingFinished()"]()

    def move_point(self) -> None:
        from IACSegLib.scene import landmark_index

        self.flip ^= 1
        node = self.logic.markupsNode
        z = HEIGHTS["R_petrolingual"] + (4.0 if self.flip else -4.0)
        node.SetNthControlPointPositionWorld(landmark_index(node, "R_petrolingual"), 25.0, 0.0, z)  # RAS

    def reassign(self) -> None:
        self.flip ^= 1
        segment = "L_cavernous" if self.flip else "L_supraclinoid"
        self.panel._correct(lambda s: s.reassign_lesion(self.to_reassign, segment))  # what onReassign runs

    def delete(self) -> None:
        lesion = self.to_delete.pop(0)
        self.panel._correct(lambda s: s.delete_lesion(lesion))  # what onDelete runs

    def paint_missed(self) -> None:
        """The Segment Editor: a new segment "missed" (AddEmptySegment puts it in the calcium's shared layer) painted
        with a blob beside the artery."""
        import slicer

        painted = self.painted.pop(0)
        node = self.logic.segmentationNode
        segmentation = node.GetSegmentation()
        segment_id = segmentation.AddEmptySegment("", "missed")
        array = slicer.util.arrayFromSegmentInternalBinaryLabelmap(node, segment_id)
        if array.shape == painted.shape:  # the engine's labelmap covers the CT
            array[painted] = segmentation.GetSegment(segment_id).GetLabelValue()
            segmentation.GetSegment(segment_id).Modified()
        else:  # the baseline shrank the layers
            slicer.util.updateSegmentBinaryLabelmapFromArray(painted.astype(np.uint8), node, segment_id,
                                                            self.logic.volumeNode)

    def add(self) -> None:
        self.panel.onAddPainted()  # read the painted voxels, add the lesion, remove "missed"

    def run(self, repeats: int) -> dict[str, tuple[float, int]]:
        out = {}
        add = self.add
        add_action = lambda: add()  # noqa: E731 — carries the paint step
        add_action.prepare = self.paint_missed  # type: ignore[attr-defined]
        for label, action in (("landmark move, slice typed", self.type_slice),
                              ("landmark move, point moved (table/Python)", self.move_point),
                              ("lesion reassign", self.reassign), ("lesion delete", self.delete),
                              ("lesion add (Add painted lesion)", add_action)):
            times, changed = [], []
            for _ in range(repeats):
                times.append(self.timed(action))
                changed.append(self.session.last_change.count)
            out[label] = (float(np.median(times)), int(np.median(changed)))
        return out


def check_scene(logic) -> int:
    """The segmentation equals the session's labels voxel for voxel; returns the layer count."""
    import slicer

    from iacseg.core.contracts import SEGMENTS

    node, session = logic.segmentationNode, logic.session
    segmentation = node.GetSegmentation()
    for value, name in sorted(SEGMENTS.items()):
        segment_id = segmentation.GetSegmentIdBySegmentName(name)
        shown = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, logic.volumeNode) > 0
        if not np.array_equal(shown, session.labels == value):
            raise RuntimeError(f"the segment {name} differs from the review session's labels")
    return segmentation.GetNumberOfLayers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline-repeats", type=int, default=3)
    parser.add_argument("--lesions", type=int, default=30, help="lesions per side")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.repeats + args.baseline_repeats > min(10, 2 * args.lesions - 2):
        parser.error("repeats + baseline repeats must be <= 10 (painted lesions) and < 2 x lesions")

    import slicercore_env

    env = slicercore_env.install()
    import slicer

    import IACSeg
    import slicer_stand_ins as stand_ins
    from IACSegLib.review_panel import ReviewPanel

    errors: list[str] = []
    slicer.util.errorDisplay = lambda text, *a, **k: errors.append(str(text))
    with tempfile.TemporaryDirectory(prefix="iacseg-bench-") as tmp:
        t0 = time.perf_counter()
        ct, folder, painted = build_case(Path(tmp), args.lesions, args.seed)
        env.reset(Path(tmp) / "slicer")
        volume = slicer.util.loadVolume(str(ct))
        logic = IACSeg.IACSegLogic()
        panel = ReviewPanel(stand_ins.FakeUI(), logic, None)
        logic.showResult(folder, volume)
        panel.onFinished(None)
        session = logic.session
        print(f"case: CT {SHAPE[::-1]} (i, j, k), {int(np.count_nonzero(session.labels))} calcified voxels in "
              f"{session.lesion_count} lesions; written and shown in {time.perf_counter() - t0:.0f} s "
              f"(slicer-core {slicercore_env.SLICER_CORE_VERSION}); layers {check_scene(logic)}")

        bench = Bench(panel, logic, painted)
        current = bench.run(args.repeats)
        layers_current = check_scene(logic)
        if errors:
            raise RuntimeError(f"errors shown: {errors}")
        with old_path(logic):
            baseline = bench.run(args.baseline_repeats)
        layers_baseline = check_scene(logic)

    print(f"\n{'action (reader -> segments + tables)':44s} {'voxels':>7s} {'current ms':>11s} {'baseline ms':>12s} "
          f"{'speed-up':>9s}")
    for label, (ms, changed) in current.items():
        old_ms = baseline[label][0]
        verdict = "ok" if ms <= 100.0 else "OVER 100 ms"
        print(f"{label:44s} {changed:7d} {ms:11.1f} {old_ms:12.1f} {old_ms / ms:8.1f}x  {verdict}")
    print(f"\nshared labelmap layers after the corrections: current {layers_current}, baseline {layers_baseline} "
          f"(started with 1)")
    print(f"medians of {args.repeats} (current) and {args.baseline_repeats} (baseline) repeats; the segmentation "
          "equals the review session's labels voxel for voxel after each path")


if __name__ == "__main__":
    main()
