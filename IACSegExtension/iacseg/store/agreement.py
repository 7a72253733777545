"""Agreement between label maps and landmarks of one case: model vs reader, reader vs reader (from a store).

`pair_agreement` is pure numpy: two label maps (0..8, ``[k, j, i]``, same `Grid`) and two landmark sets →
per segment Dice and volume difference (mm³, b − a), the same for all calcium ("all": label > 0, whatever the
segment), and per landmark the plane-height error |z_b − z_a| (mm, LPS z; also in slices of the grid).
Dice of two empty masks is 1.0 (both agree there is no calcium), so results never hold NaN.

`store_agreement` compares, for every case of a corrections store, the engine's original output with each
reader's latest correction ("model_vs_reader"), and every pair of readers on the cases both corrected
("reader_vs_reader"), with per-case rows and pooled means.
"""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..core.contracts import LANDMARKS, SEGMENTS
from ..core.errors import InputError
from ..evaluate.metrics import landmark_errors
from ..core.grid import Grid
from ..core.files import write_text_atomic
from ..core.landmarks import Landmark

MODEL = "model"  # the name of the engine's original output in comparison rows
_N_LABELS = max(SEGMENTS) + 1


def _heights(landmarks: Mapping[str, Landmark | float]) -> dict[str, float]:
    return {name: float(v.z_mm if isinstance(v, Landmark) else v) for name, v in landmarks.items() if v is not None}


def _slice_axis(grid: Grid) -> tuple[float, float]:
    """(spacing of slices along world z in mm, world z of slice 0's centre) for counting slices between planes."""
    dz = abs(float(grid.slice_normal[2])) * grid.spacing[2]
    return (dz if dz > 0 else grid.spacing[2]), grid.origin[2]


def _overlap_row(n_a: int, n_b: int, both: int, voxel_mm3: float) -> dict[str, float]:
    v_a, v_b = n_a * voxel_mm3, n_b * voxel_mm3
    return {"dice": 1.0 if n_a + n_b == 0 else 2.0 * both / (n_a + n_b),
            "volume_a_mm3": v_a, "volume_b_mm3": v_b, "volume_difference_mm3": v_b - v_a}


def label_agreement(labels_a: np.ndarray, labels_b: np.ndarray, voxel_volume_mm3: float) -> dict[str, Any]:
    """Per segment and for all calcium: Dice, volumes of a and b and their difference b − a (mm³).

    ``labels_a``/``labels_b``: integer label maps 0..8 of the same shape. Returns ``{"segments": {name: row},
    "all": row}`` with ``row = {"dice", "volume_a_mm3", "volume_b_mm3", "volume_difference_mm3"}``.
    """
    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"label maps {a.shape} and {b.shape} are on different grids")
    a, b = a.astype(np.int64, copy=False).ravel(), b.astype(np.int64, copy=False).ravel()
    for x in (a, b):
        if x.size and (x.min() < 0 or x.max() >= _N_LABELS):
            raise ValueError(f"label values must be 0..{_N_LABELS - 1}, found {x.min()}..{x.max()}")
    joint = np.bincount(a * _N_LABELS + b, minlength=_N_LABELS ** 2).reshape(_N_LABELS, _N_LABELS)
    per_a, per_b = joint.sum(axis=1), joint.sum(axis=0)
    segments = {name: _overlap_row(int(per_a[v]), int(per_b[v]), int(joint[v, v]), voxel_volume_mm3)
                for v, name in sorted(SEGMENTS.items())}
    everything = _overlap_row(int(per_a[1:].sum()), int(per_b[1:].sum()), int(joint[1:, 1:].sum()), voxel_volume_mm3)
    return {"segments": segments, "all": everything}


def pair_agreement(labels_a: np.ndarray, labels_b: np.ndarray, grid: Grid,
                   landmarks_a: Mapping[str, Landmark | float], landmarks_b: Mapping[str, Landmark | float]
                   ) -> dict[str, Any]:
    """Agreement of annotation b with annotation a of one case (label maps ``[k, j, i]`` 0..8 on ``grid``).

    Landmarks are ``{name: Landmark}`` or ``{name: z_mm}`` (LPS plane heights). Returns::

        {"segments": {name: {"dice", "volume_a_mm3", "volume_b_mm3", "volume_difference_mm3"}},  # b − a, mm³
         "all": {...same, for label > 0...},
         "landmarks": {name: {"z_a_mm", "z_b_mm", "error_mm", "error_slices"}},  # |z_b − z_a|
         "landmark_mean_error_mm": float | None, "landmark_mean_error_slices": float | None,
         "landmarks_missing": [names in a or b but not both]}
    """
    if tuple(np.shape(labels_a)) != tuple(grid.shape):
        raise ValueError(f"label map {np.shape(labels_a)} is not on the grid {grid.shape}")
    result = label_agreement(labels_a, labels_b, grid.voxel_volume_mm3)
    z_a, z_b = _heights(landmarks_a), _heights(landmarks_b)
    shared = {n: z_a[n] for n in [*LANDMARKS, *sorted(z_a)] if n in z_a and n in z_b}
    dz, z0 = _slice_axis(grid)
    errors = landmark_errors(z_b, shared, dz, slice_z0_mm=z0)
    result["landmarks"] = {name: {"z_a_mm": e["truth_z_mm"], "z_b_mm": e["pred_z_mm"], "error_mm": e["abs_error_mm"],
                                  "error_slices": e["abs_error_slices"]} for name, e in errors["landmarks"].items()}
    result["landmark_mean_error_mm"] = errors["mean_abs_error_mm"]
    result["landmark_mean_error_slices"] = errors["mean_abs_error_slices"]
    result["landmarks_missing"] = sorted(set(z_a) ^ set(z_b))
    return result


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _overlap_summary(rows: list[Mapping[str, float]]) -> dict[str, float | None]:
    return {"n_with_calcium": sum(1 for r in rows if r["volume_a_mm3"] > 0 or r["volume_b_mm3"] > 0),
            "mean_dice": _mean(r["dice"] for r in rows),
            "mean_volume_difference_mm3": _mean(r["volume_difference_mm3"] for r in rows),
            "mean_abs_volume_difference_mm3": _mean(abs(r["volume_difference_mm3"]) for r in rows)}


def summarise_rows(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Pooled means over comparison rows (each a `pair_agreement` result): per segment, all, per landmark."""
    names = [n for n in LANDMARKS if any(n in r["landmarks"] for r in rows)]
    return {
        "n_cases": len(rows),
        "segments": {name: _overlap_summary([r["segments"][name] for r in rows]) for name in SEGMENTS.values()},
        "all": _overlap_summary([r["all"] for r in rows]),
        "landmarks": {n: _mean(r["landmarks"][n]["error_mm"] for r in rows if n in r["landmarks"]) for n in names},
        "landmark_mean_error_mm": _mean(e["error_mm"] for r in rows for e in r["landmarks"].values()),
        "landmark_mean_error_slices": _mean(e["error_slices"] for r in rows for e in r["landmarks"].values()),
    }


def _annotation(store: Any, case_id: str, which: str | tuple[str, int]) -> tuple[np.ndarray, Grid, dict[str, Landmark]]:
    from ..outputs.markups import read_landmarks
    from ..outputs.result_folder import read_label_map

    labels, grid = read_label_map(store.labels_path(case_id, which))
    return labels, grid, read_landmarks(store.landmarks_path(case_id, which), required=())


def _compare(case: Any, a: tuple[str, int | None], b: tuple[str, int | None], ann_a: tuple, ann_b: tuple
             ) -> dict[str, Any]:
    (la, grid_a, lm_a), (lb, grid_b, lm_b) = ann_a, ann_b
    if not grid_a.same_geometry(grid_b):
        raise InputError(f"case {case.case_id}: the label maps of {a[0]} and {b[0]} are on different grids; "
                         f"run `iacseg store verify` and fix the case")
    return {"case": case.case_id, "split": case.split, "a": a[0], "a_version": a[1], "b": b[0], "b_version": b[1],
            **pair_agreement(la, lb, grid_a, lm_a, lm_b)}


def store_agreement(store: Any) -> dict[str, Any]:
    """Model-vs-reader and reader-vs-reader agreement over every case of ``store`` (a `CorrectionStore`).

    Each reader's latest correction (highest version) of a case is used. Returns::

        {"store": name,
         "model_vs_reader": {"cases": [row], "pooled": summary, "by_reader": {reader: summary}},
         "reader_vs_reader": {"cases": [row], "pooled": summary, "pairs": [{"a", "b", **summary}]}}

    where a row is ``{"case", "split", "a", "a_version", "b", "b_version", **pair_agreement(...)}`` (a is
    ``"model"`` with version None for the engine's output) and a summary is `summarise_rows`.
    """
    model_rows: list[dict[str, Any]] = []
    reader_rows: list[dict[str, Any]] = []
    for case in sorted(store.cases(), key=lambda c: c.case_id):
        latest = {reader: max(versions) for reader, versions in sorted(case.corrections.items()) if versions}
        if not latest:
            continue
        original = _annotation(store, case.case_id, "original")
        corrected = {reader: _annotation(store, case.case_id, (reader, v)) for reader, v in latest.items()}
        for reader, version in latest.items():
            model_rows.append(_compare(case, (MODEL, None), (reader, version), original, corrected[reader]))
        for r1, r2 in itertools.combinations(latest, 2):
            reader_rows.append(_compare(case, (r1, latest[r1]), (r2, latest[r2]), corrected[r1], corrected[r2]))
    readers = sorted({r["b"] for r in model_rows})
    pairs = sorted({(r["a"], r["b"]) for r in reader_rows})
    return {
        "store": Path(store.root).name,
        "model_vs_reader": {"cases": model_rows, "pooled": summarise_rows(model_rows),
                            "by_reader": {rd: summarise_rows([r for r in model_rows if r["b"] == rd]) for rd in readers}},
        "reader_vs_reader": {"cases": reader_rows, "pooled": summarise_rows(reader_rows),
                             "pairs": [{"a": a, "b": b, **summarise_rows([r for r in reader_rows
                                                                          if (r["a"], r["b"]) == (a, b)])}
                                       for a, b in pairs]},
    }


def csv_columns() -> list[str]:
    """Columns of the agreement CSV: one row per compared pair of annotations of one case."""
    cols = ["comparison", "case", "split", "a", "a_version", "b", "b_version",
            "dice_all", "volume_a_all_mm3", "volume_b_all_mm3", "volume_difference_all_mm3"]
    for name in SEGMENTS.values():
        cols += [f"dice_{name}", f"volume_difference_{name}_mm3"]
    cols += [f"landmark_error_{n}_mm" for n in LANDMARKS] + ["landmark_mean_error_mm", "landmark_mean_error_slices"]
    return cols


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, (float, np.floating)) else value


def csv_row(comparison: str, row: Mapping[str, Any]) -> list[Any]:
    """One CSV line (`csv_columns` order) of a comparison row of `store_agreement`."""
    a = row["all"]
    values: list[Any] = [comparison, row["case"], row["split"], row["a"], row["a_version"], row["b"], row["b_version"],
                         a["dice"], a["volume_a_mm3"], a["volume_b_mm3"], a["volume_difference_mm3"]]
    for name in SEGMENTS.values():
        values += [row["segments"][name]["dice"], row["segments"][name]["volume_difference_mm3"]]
    values += [row["landmarks"].get(n, {}).get("error_mm") for n in LANDMARKS]
    values += [row["landmark_mean_error_mm"], row["landmark_mean_error_slices"]]
    return [_csv_cell(v) for v in values]


def agreement_csv_text(result: Mapping[str, Any]) -> str:
    """The per-case rows of `store_agreement` as CSV text (model_vs_reader rows first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_columns())
    for comparison in ("model_vs_reader", "reader_vs_reader"):
        for row in result[comparison]["cases"]:
            writer.writerow(csv_row(comparison, row))
    return buffer.getvalue()


def write_agreement_csv(result: Mapping[str, Any], path: str | Path) -> Path:
    """Write the per-case rows of ``result`` (`store_agreement`) to ``path`` as CSV, atomically."""
    return write_text_atomic(path, agreement_csv_text(result))


def _f(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _summary_lines(title: str, s: Mapping[str, Any]) -> list[str]:
    lines = [f"{title}: {s['n_cases']} case comparison(s)",
             f"  {'segment':16s} {'with Ca':>7s} {'mean Dice':>9s} {'mean Δvol mm³':>14s} {'mean |Δvol| mm³':>16s}"]
    for name, row in [*s["segments"].items(), ("all calcium", s["all"])]:
        lines.append(f"  {name:16s} {row['n_with_calcium']:7d} {_f(row['mean_dice'], '.3f'):>9s} "
                     f"{_f(row['mean_volume_difference_mm3'], '.1f'):>14s} "
                     f"{_f(row['mean_abs_volume_difference_mm3'], '.1f'):>16s}")
    lines.append("  (Dice of a case with no calcium in a segment for either annotation counts as 1.0)")
    per = ", ".join(f"{n} {_f(v, '.2f')}" for n, v in s["landmarks"].items())
    lines.append(f"  landmark error mean {_f(s['landmark_mean_error_mm'], '.2f')} mm "
                 f"({_f(s['landmark_mean_error_slices'], '.2f')} slices)" + (f"; {per}" if per else ""))
    return lines


def _case_lines(rows: list[Mapping[str, Any]]) -> list[str]:
    lines = [f"  {'case':16s} {'a':>12s} {'b':>16s} {'Dice':>6s} {'Δvol mm³':>10s} {'landmark mm':>11s}"]
    for r in rows:
        a = r["a"] if r["a_version"] is None else f"{r['a']} v{r['a_version']}"
        lines.append(f"  {r['case'][:16]:16s} {a[:12]:>12s} {(r['b'] + ' v' + str(r['b_version']))[:16]:>16s} "
                     f"{r['all']['dice']:6.3f} {r['all']['volume_difference_mm3']:10.1f} "
                     f"{_f(r['landmark_mean_error_mm'], '.2f'):>11s}")
    return lines


def format_agreement(result: Mapping[str, Any]) -> str:
    """A terminal summary of `store_agreement`: per-case lines, then pooled per-segment means, per comparison."""
    mvr, rvr = result["model_vs_reader"], result["reader_vs_reader"]
    if not mvr["cases"]:
        return f"store {result['store']}: no corrected cases yet, nothing to compare"
    lines = ["Model vs reader (b − a: reader − model)", *_case_lines(mvr["cases"]), ""]
    lines += _summary_lines("Model vs reader, pooled", mvr["pooled"])
    if rvr["cases"]:
        lines += ["", "Reader vs reader (cases both corrected; b − a)", *_case_lines(rvr["cases"]), ""]
        lines += _summary_lines("Reader vs reader, pooled", rvr["pooled"])
    else:
        lines += ["", "Reader vs reader: no case has been corrected by two readers"]
    return "\n".join(lines)
