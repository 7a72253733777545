"""Export truth-layout case folders as an nnU-Net v2 raw dataset (``iacseg export-nnunet``).

``OUT/Dataset{id:03d}_{name}/``::

    imagesTr/<case>_0000.nii.gz   CT in HU (int16) on the engine's axial LPS grid
    labelsTr/<case>.nii.gz        segment labels 0..8 (contracts.SEGMENTS) on exactly that grid
    dataset.json                  channel 0 = "CT", labels background 0 … R_supraclinoid 8, numTraining, .nii.gz
    splits_final.json             one fold: a fixed, evenly spaced train/val split of the cases (sorted order)
    landmarks.json                the six landmark planes per case (LPS mm) for the landmark model
    export.json                   provenance: engine version, time, cases per split, which grid

Each case goes through `iacseg.train.data.read_case_folder` — the engine's own pre-processing, so the images
are on the axial LPS grid (+i left, +j posterior, +k superior) that ``--model nnunet:…`` feeds the model at
inference; a model trained on this export sees the same voxel order in both. Images are written from arrays
(no header copied); case ids are ``<name>_<nnn>`` in sorted folder order unless ``keep_names`` (folder names can
identify people). The dataset is built in a temporary sibling folder and renamed into place.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import __version__
from ..core.contracts import SEGMENTS
from ..core.errors import InputError
from ..core.progress import Progress, no_progress
from ..outputs.nnunet_dataset import ExportCase, dataset_folder_name, dataset_json, landmark_list, splits_final

DEFAULT_DATASET_ID = 502
DEFAULT_DATASET_NAME = "ICACalc"
EXPORT_FORMAT = "iacseg-truth-nnunet-export"
GRID_NOTE = "axial LPS grid of iacseg's pre-processing (+i left, +j posterior, +k superior), native spacing"
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def assign_splits(n_cases: int, val_fraction: float) -> list[str]:
    """``"train"``/``"val"`` per case (sorted order): ``round(n × val_fraction)`` evenly spaced validation cases,
    at least one when ``val_fraction > 0`` and there are two cases or more, never all of them."""
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"validation fraction {val_fraction} must be at least 0 and below 1",
                         parameter="val_fraction")
    n_val = int(round(n_cases * val_fraction))
    if val_fraction > 0 and n_cases >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(n_cases - 1, 0))
    chosen = set(np.linspace(0, n_cases - 1, n_val).round().astype(int).tolist()) if n_val else set()
    return ["val" if i in chosen else "train" for i in range(n_cases)]


def case_ids(folders: Sequence[Path], dataset_name: str, keep_names: bool = False) -> list[str]:
    """nnU-Net case identifiers: ``<dataset_name>_<nnn>`` (000, 001, … in the given order) or the folder names."""
    if not keep_names:
        width = max(3, len(str(len(folders) - 1)))
        return [f"{dataset_name}_{n:0{width}d}" for n in range(len(folders))]
    bad = [f.name for f in folders if not _CASE_ID.match(f.name)]
    if bad:
        raise InputError(f"case folder name {bad[0]!r} cannot be an nnU-Net case id; rename it (letters, digits, "
                         f"'_' or '-') or let the export number the cases", parameter="keep_names")
    return [f.name for f in folders]


def truth_dataset_json(cases: Sequence[ExportCase], folder_name: str) -> dict[str, Any]:
    """``dataset.json`` (the store export's builder) with its provenance lines said for truth folders."""
    doc = dataset_json(cases, folder_name, store_name="")
    doc["description"] = (f"Intracranial ICA calcification by segment (labels 1-8) on the axial LPS grid, exported "
                          f"from truth-layout case folders by iacseg {__version__}. splits_final.json holds a fixed "
                          f"train/val split (copy it to the nnU-Net preprocessed folder to use it).")
    doc["reference"] = "IACSeg truth-layout case folders"
    doc["licence"] = "that of the source case folders"
    return doc


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")


def hu_int16(hu: np.ndarray) -> np.ndarray:
    """HU rounded to int16 (clipped to its range): nnU-Net's usual CT storage, half the size of float32."""
    return np.clip(np.rint(hu), -32768, 32767).astype(np.int16)


def export_truth_cases(data: str | Path, out: str | Path, *, dataset_id: int = DEFAULT_DATASET_ID,
                       dataset_name: str = DEFAULT_DATASET_NAME, val_fraction: float = 0.2,
                       keep_names: bool = False, progress: Progress = no_progress) -> Path:
    """Write ``out/Dataset{id}_{name}/`` (see the module docstring) from the case folders under ``data``.

    `InputError` when ``data`` holds no case folder, when the dataset folder exists and is not empty, or when
    a label map holds values outside 0..8. Returns the dataset folder."""
    from ..io.writers import write_image
    from ..core.files import atomic_folder
    from ..outputs.truth_folder import case_folders
    from .data import read_case_folder

    folder_name = dataset_folder_name(dataset_id, dataset_name)
    target = Path(out).absolute() / folder_name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target} already exists and is not empty; export to another folder or use another "
                         f"dataset id (an export is never mixed into an existing dataset)", parameter="dataset_id")
    folders = case_folders(data)
    ids = case_ids(folders, dataset_name, keep_names)
    splits = assign_splits(len(folders), val_fraction)
    cases: list[ExportCase] = []
    try:
        with atomic_folder(target) as tmp:
            for sub in ("imagesTr", "labelsTr"):
                (tmp / sub).mkdir()
            for n, (folder, case_id, split) in enumerate(zip(folders, ids, splits)):
                progress("export", n / len(folders), f"case {n + 1}/{len(folders)}")
                case = read_case_folder(folder)
                if case.labels.size and int(case.labels.max()) > max(SEGMENTS):
                    raise InputError(f"case {n + 1} ({case_id}): its label map holds values above {max(SEGMENTS)}; "
                                     f"labels must be the segment labels 0..{max(SEGMENTS)}")
                item = ExportCase(case_id, split, {"annotation": "truth"}, case.landmarks)
                write_image(tmp / item.image_relpath, hu_int16(case.ct.hu), case.ct.grid)
                write_image(tmp / item.labels_relpath, case.labels.astype(np.uint8), case.ct.grid)
                cases.append(item)
                del case
            _write_json(tmp / "dataset.json", truth_dataset_json(cases, folder_name))
            _write_json(tmp / "splits_final.json", splits_final(cases))
            _write_json(tmp / "landmarks.json", landmark_list(cases))
            _write_json(tmp / "export.json", {
                "format": EXPORT_FORMAT, "format_version": 1, "dataset": folder_name,
                "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"), "engine_version": __version__,
                "grid": GRID_NOTE, "case_ids": "folder names" if keep_names else "sorted folder order",
                "cases_per_split": {s: splits.count(s) for s in ("train", "val")},
                "cases": [{"case": c.case_id, "split": c.split} for c in cases]})
    except FileExistsError:  # another export created it meanwhile
        raise InputError(f"{target} already exists and is not empty; export to another folder") from None
    progress("export", 1.0, f"wrote {target}")
    return target
