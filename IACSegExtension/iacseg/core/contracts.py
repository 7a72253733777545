"""Names other tools and tests rely on (docs/DESIGN.md, "Contracts"). Change nothing here lightly."""

from __future__ import annotations

#: Label-map value → segment name. L/R are the patient's left/right. 0 is background.
SEGMENTS: dict[int, str] = {
    1: "L_cervical",
    2: "L_petrous",
    3: "L_cavernous",
    4: "L_supraclinoid",
    5: "R_cervical",
    6: "R_petrous",
    7: "R_cavernous",
    8: "R_supraclinoid",
}
SEGMENT_IDS: dict[str, int] = {name: value for value, name in SEGMENTS.items()}

#: ICA parts from caudal to cranial; the landmark planes separate consecutive parts.
ICA_PARTS: tuple[str, ...] = ("cervical", "petrous", "cavernous", "supraclinoid")
SIDES: tuple[str, ...] = ("L", "R")

#: Markup control-point labels, in the order the landmark model predicts them.
LANDMARKS: tuple[str, ...] = (
    "L_carotid_canal",
    "L_petrolingual",
    "L_anterior_clinoid",
    "R_carotid_canal",
    "R_petrolingual",
    "R_anterior_clinoid",
)
#: Per side, the landmark kinds from caudal to cranial (each is the lower bound of the next part).
LANDMARK_KINDS: tuple[str, ...] = ("carotid_canal", "petrolingual", "anterior_clinoid")

#: Display colours (RGB 0..1): left in reds/oranges, right in blues/greens, cranial parts brighter.
SEGMENT_COLORS: dict[int, tuple[float, float, float]] = {
    1: (0.55, 0.10, 0.10),
    2: (0.85, 0.25, 0.10),
    3: (0.95, 0.55, 0.10),
    4: (1.00, 0.85, 0.20),
    5: (0.10, 0.20, 0.55),
    6: (0.10, 0.45, 0.85),
    7: (0.10, 0.70, 0.80),
    8: (0.30, 0.90, 0.55),
}

# Output folder contract of `iacseg segment INPUT -o OUT`.
LABELS_FILE = "calcifications.nii.gz"
SEGMENTATION_FILE = "calcifications.seg.nrrd"
LANDMARKS_FILE = "landmarks.mrk.json"
REPORT_JSON = "report.json"
REPORT_CSV = "report.csv"

# Synthetic-phantom contract: the same names with a `truth_` prefix beside `ct.nii.gz`.
PHANTOM_CT_FILE = "ct.nii.gz"
PHANTOM_DICOM_DIR = "dicom"
TRUTH_LABELS_FILE = "truth_calcifications.nii.gz"
TRUTH_LANDMARKS_FILE = "truth_landmarks.mrk.json"
TRUTH_JSON = "truth.json"

#: Ground-truth convention for calcium (Jin et al.): ≥ 130 HU, isolated single voxels removed.
CALCIUM_HU = 130.0
AIR_HU = -1024.0


def segment_id(side: str, part: str) -> int:
    """Label value of ``side`` ('L'/'R') and ICA ``part`` ('cervical', … 'supraclinoid')."""
    return SEGMENT_IDS[f"{side}_{part}"]
