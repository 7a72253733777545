"""Export a corrections store as an nnU-Net v2 raw dataset plus a landmark list for the DST.

``OUT/Dataset501_ICACalc/``::

    imagesTr/<case>_0000.nii.gz  labelsTr/<case>.nii.gz    train + val cases (the store's fixed split)
    imagesTs/<case>_0000.nii.gz  labelsTs/<case>.nii.gz    test cases
    dataset.json        nnU-Net v2 (channel 0 = "CT", labels background 0 … R_supraclinoid 8, numTraining)
    splits_final.json   one fold [{"train": [...], "val": [...]}]: the store's patient-level split, never re-drawn
    landmarks.json      [{"case", "split", "image", "labels", "landmarks": {name: {"z_mm", "position"}}}] (LPS mm)
    export.json         provenance: store name, time, statuses, cases per split, which correction each label is

Images and label maps are copied byte for byte from the store (de-identified at add: NIfTI written from arrays);
no other field of the store that could identify a patient (subject key, identifiers) is written. The dataset is
built in a temporary sibling folder and renamed into place, so a failure leaves no partial dataset; an existing
non-empty dataset folder is refused (an export never mixes with an earlier one).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import __version__
from ..core.contracts import SEGMENTS
from ..core.errors import InputError
from ..outputs.nnunet_dataset import (SPLITS, ExportCase, dataset_folder_name, dataset_json,
                                      landmark_list, splits_final)

EXPORT_FORMAT = "iacseg-training-export"
STATUSES = ("todo", "in_review", "corrected", "approved")


def check_statuses(statuses: Iterable[str]) -> tuple[str, ...]:
    """The statuses to export, validated (`InputError` for an unknown or empty selection); one name is fine."""
    if isinstance(statuses, str):
        statuses = (statuses,)
    chosen = tuple(dict.fromkeys(str(s) for s in statuses))
    unknown = [s for s in chosen if s not in STATUSES]
    if unknown or not chosen:
        raise InputError(f"unknown case status {', '.join(unknown) or '(none)'}; choose from {', '.join(STATUSES)}")
    return chosen


def export_record(cases: Sequence[ExportCase], *, store_name: str, folder_name: str, statuses: Sequence[str],
                  exported: str | None = None) -> dict[str, Any]:
    """``export.json``: where the dataset came from and which annotation each case's labels are."""
    return {
        "format": EXPORT_FORMAT,
        "format_version": 1,
        "store": store_name,
        "dataset": folder_name,
        "exported": exported or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "engine_version": __version__,
        "statuses": list(statuses),
        "cases_per_split": {s: sum(1 for c in cases if c.split == s) for s in SPLITS},
        "cases": [{"case": c.case_id, "split": c.split, "approved": c.approved, "labels": dict(c.labels_source)}
                  for c in sorted(cases, key=lambda c: c.case_id)],
    }


def labels_choice(info: Any) -> str | tuple[str, int]:
    """Which annotation of a store case (`CaseInfo`) to export: the approved correction (while the case is
    approved), else the newest correction, else the engine's original output."""
    if info.status == "approved" and info.approved:
        reader, version = info.approved
        return (str(reader), int(version))
    if any(info.corrections.values()):
        return "latest"
    return "original"


def _check_case_files(case_id: str, image: Path, labels: Path) -> None:
    """`InputError` unless ``labels`` is a 0..8 label map on exactly the grid of ``image`` (nnU-Net requires it)."""
    import SimpleITK as sitk

    from ..io.volume import grid_from_sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(image))
    reader.ReadImageInformation()
    image_grid = grid_from_sitk(reader)
    lab = sitk.ReadImage(str(labels))
    array = sitk.GetArrayViewFromImage(lab)
    if not grid_from_sitk(lab).same_geometry(image_grid):
        raise InputError(f"case {case_id}: its label map is not on its image's grid; run `iacseg store verify` "
                         f"and fix the case before exporting")
    if array.size and (int(array.min()) < 0 or int(array.max()) > max(SEGMENTS)):
        raise InputError(f"case {case_id}: its label map holds values outside 0..{max(SEGMENTS)}; run "
                         f"`iacseg store verify` and fix the case before exporting")


def _resolve(store: Any, info: Any) -> tuple[ExportCase, Path, Path]:
    """Fix the case's files now (correction folders are never overwritten, so later saves cannot change them)."""
    from ..outputs.markups import read_landmarks

    which = labels_choice(info)
    labels = Path(store.labels_path(info.case_id, which))
    landmarks = read_landmarks(store.landmarks_path(info.case_id, which))
    source: dict[str, Any] = {"annotation": "approved" if isinstance(which, tuple) else which}
    if isinstance(which, tuple):
        source.update(reader=which[0], version=which[1])
    root = Path(store.root).resolve()
    with contextlib.suppress(ValueError):
        source["file"] = labels.resolve().relative_to(root).as_posix()
    case = ExportCase(info.case_id, info.split, source, landmarks, approved=info.status == "approved")
    return case, Path(store.image_path(info.case_id)), labels


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")


def export_training_set(store: Any, out: str | Path, *, dataset_id: int = 501, dataset_name: str = "ICACalc",
                        statuses: Sequence[str] = ("approved",)) -> Path:
    """Write ``out/Dataset{id}_{name}/`` (nnU-Net v2 layout, see module docstring) from ``store``'s cases whose
    status is in ``statuses``; returns the dataset folder.

    Labels are the approved correction (else the newest correction, else the engine's output for statuses
    that allow uncorrected cases). `InputError` when no case has such a status, when the dataset folder already
    exists and is not empty (choose another ``out`` or ``dataset_id``), or when a case's files are damaged.
    """
    from ..core.files import atomic_folder

    chosen = check_statuses(statuses)
    folder_name = dataset_folder_name(dataset_id, dataset_name)
    target = Path(out).absolute() / folder_name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target} already exists and is not empty; export to another folder or use another "
                         f"dataset id (an export is never mixed into an existing dataset)", parameter="dataset_id")
    infos = sorted((c for c in store.cases() if c.status in chosen), key=lambda c: c.case_id)
    if not infos:
        raise InputError(f"the store {store.root} has no case with status {' or '.join(chosen)}; approve corrections "
                         f"first (set a case's status to approved) or choose other statuses", parameter="status")
    resolved = [_resolve(store, info) for info in infos]
    for case, image, labels in resolved:
        _check_case_files(case.case_id, image, labels)
    cases = [case for case, _, _ in resolved]
    store_name = Path(store.root).name
    try:
        with atomic_folder(target) as tmp:
            for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
                (tmp / sub).mkdir()
            for case, image, labels in resolved:
                shutil.copyfile(image, tmp / case.image_relpath)
                shutil.copyfile(labels, tmp / case.labels_relpath)
            _write_json(tmp / "dataset.json", dataset_json(cases, folder_name, store_name))
            _write_json(tmp / "splits_final.json", splits_final(cases))
            _write_json(tmp / "landmarks.json", landmark_list(cases))
            _write_json(tmp / "export.json", export_record(cases, store_name=store_name, folder_name=folder_name,
                                                           statuses=chosen))
    except FileExistsError:  # another export created it meanwhile
        raise InputError(f"{target} already exists and is not empty; export to another folder") from None
    return target
