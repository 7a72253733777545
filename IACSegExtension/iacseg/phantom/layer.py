"""`Layer`: one painted part of a phantom head (a box and the function that paints HU inside it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

Paint = Callable[..., list]


@dataclass
class Layer:
    name: str
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    paint: Paint
    world: bool = False   # box and coordinates in world (scanner) frame instead of the head frame
