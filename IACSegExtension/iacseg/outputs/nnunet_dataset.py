"""The nnU-Net v2 raw dataset format as IACSeg writes it (one owner for the store's export and the phantom export
``iacseg train nnunet-export``): the folder name, ``dataset.json``, ``splits_final.json``, the image/label paths of
a case and the DST landmark list."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .. import __version__
from ..core.contracts import LANDMARKS, SEGMENTS
from ..core.errors import InputError
from ..core.landmarks import Landmark

SPLITS = ("train", "val", "test")
FILE_ENDING = ".nii.gz"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ExportCase:
    """One exported case: its store split, which annotation its labels are, and its six landmarks (LPS mm).

    ``labels_source`` says which annotation the labels are: ``{"annotation": "approved" | "latest" | "original",
    "reader", "version" (for an approved correction), "file": path of the label map inside the store}``.
    """

    case_id: str
    split: str
    labels_source: Mapping[str, Any] = field(default_factory=dict)
    landmarks: Mapping[str, Landmark] = field(default_factory=dict)
    approved: bool = False

    @property
    def part(self) -> str:
        """nnU-Net folder suffix: "Tr" for train and val cases, "Ts" for test cases."""
        return "Ts" if self.split == "test" else "Tr"

    @property
    def image_relpath(self) -> str:
        return f"images{self.part}/{self.case_id}_0000{FILE_ENDING}"

    @property
    def labels_relpath(self) -> str:
        return f"labels{self.part}/{self.case_id}{FILE_ENDING}"


def dataset_folder_name(dataset_id: int, dataset_name: str) -> str:
    """``Dataset{id:03d}_{name}`` as nnU-Net v2 expects; `InputError` for an id outside 1..999 or an odd name."""
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, int) or not 1 <= dataset_id <= 999:
        raise InputError(f"dataset id {dataset_id!r} is not usable; give a whole number from 1 to 999 (nnU-Net ids)")
    if not _NAME.match(str(dataset_name)):
        raise InputError(f"dataset name {dataset_name!r} is not usable; use letters, digits, '_' or '-' (≤ 64)")
    return f"Dataset{dataset_id:03d}_{dataset_name}"


def dataset_json(cases: Sequence[ExportCase], folder_name: str, store_name: str) -> dict[str, Any]:
    """nnU-Net v2 ``dataset.json`` for ``cases`` (numTraining counts the imagesTr cases: train + val)."""
    return {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **{name: value for value, name in sorted(SEGMENTS.items())}},
        "numTraining": sum(1 for c in cases if c.part == "Tr"),
        "file_ending": FILE_ENDING,
        "name": folder_name,
        "description": (f"Intracranial ICA calcification by segment (labels 1-8), exported from the IACSeg corrections "
                        f"store '{store_name}' by iacseg {__version__}. imagesTs/labelsTs hold the store's test split; "
                        f"splits_final.json holds its fixed train/val split (copy it to the nnU-Net preprocessed "
                        f"folder to use it)."),
        "reference": "IACSeg corrections store",
        "release": __version__,
        "licence": "see the store's data agreement",
        "tensorImageSize": "3D",
    }


def splits_final(cases: Sequence[ExportCase]) -> list[dict[str, list[str]]]:
    """nnU-Net ``splits_final.json``: one fold whose train/val lists are the store's train/val cases (sorted)."""
    return [{"train": sorted(c.case_id for c in cases if c.split == "train"),
             "val": sorted(c.case_id for c in cases if c.split == "val")}]


def landmark_list(cases: Sequence[ExportCase]) -> list[dict[str, Any]]:
    """The DST landmark list: per case its split, image/labels paths (relative) and the six planes (LPS mm)."""
    out = []
    for c in sorted(cases, key=lambda c: c.case_id):
        names = [n for n in LANDMARKS if n in c.landmarks]
        out.append({"case": c.case_id, "split": c.split, "image": c.image_relpath, "labels": c.labels_relpath,
                    "landmarks": {n: {"z_mm": float(c.landmarks[n].z_mm),
                                      "position": [float(v) for v in c.landmarks[n].position]} for n in names}})
    return out
