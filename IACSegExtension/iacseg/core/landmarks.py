"""`Landmark`: one of the six landmark planes, as every stage passes it on (the localiser, the mapping, the report,
the markups file, the store and the Slicer module)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass
class Landmark:
    """One landmark: an axial plane at world height ``z_mm`` (LPS, superior positive), shown as a point.

    ``position`` is the LPS point (mm) placed on its side at the plane's height; ``slice`` is the slice index
    on the grid the landmark was found on (may be None); ``confidence`` is the model's peak probability
    (1.0 for truth or a reader's correction).
    """

    name: str
    z_mm: float
    position: tuple[float, float, float]
    slice: float | None = None
    confidence: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "z_mm": float(self.z_mm), "position": [float(v) for v in self.position],
                "slice": None if self.slice is None else float(self.slice), "confidence": float(self.confidence),
                **self.extra}


def landmark_heights(landmarks: Iterable[Landmark] | dict[str, Landmark]) -> dict[str, float]:
    """``{name: z_mm}`` for a collection of landmarks."""
    items = landmarks.values() if isinstance(landmarks, dict) else landmarks
    return {lm.name: float(lm.z_mm) for lm in items}
