"""ShapeWorld's scene model: objects with shape, colour, texture and size, placed on an 8x8 grid of patches.

A scene is pure data (frozen dataclasses, JSON round-trip); how it looks is `cotlab.world.render`'s business.
A small object fills one 8x8-pixel patch; a large one spans 2x2 patches. Objects never share a patch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

GRID = 8  # patches per side
PATCH = 8  # pixels per patch side
CANVAS = GRID * PATCH  # 64 pixels per side

SHAPES = ("square", "circle", "triangle", "diamond", "cross")
# GenEval's colour list minus nothing: the ten colours its CLIP classifier chooses among.
COLORS = {
    "red": (215, 35, 35),
    "orange": (255, 140, 0),
    "yellow": (250, 225, 40),
    "green": (35, 165, 60),
    "blue": (35, 75, 225),
    "purple": (135, 45, 185),
    "pink": (255, 150, 205),
    "brown": (125, 70, 25),
    "black": (15, 15, 15),
    "white": (250, 250, 250),
}
COLOR_NAMES = tuple(COLORS)
TEXTURES = ("solid", "striped", "dotted")
SIZES = ("small", "large")
SIZE_CELLS = {"small": 1, "large": 2}  # patches per side
BACKGROUND = (110, 118, 128)  # a slate grey that is none of the ten colours


def as_rng(seed_or_rng) -> np.random.Generator:
    """Every stochastic function takes an int seed or a numpy Generator; this turns either into a Generator."""
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    if isinstance(seed_or_rng, (int, np.integer)) and not isinstance(seed_or_rng, bool):
        return np.random.default_rng(int(seed_or_rng))
    raise TypeError(f"expected an int seed or a numpy.random.Generator, got {type(seed_or_rng).__name__}")


@dataclass(frozen=True)
class Obj:
    """One object: its appearance and the grid cell (row, col) of its top-left patch."""

    shape: str
    color: str
    texture: str
    size: str
    row: int
    col: int

    def __post_init__(self):
        for name, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("color", self.color, COLOR_NAMES),
            ("texture", self.texture, TEXTURES),
            ("size", self.size, SIZES),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
        span = SIZE_CELLS[self.size]
        if not (0 <= self.row <= GRID - span and 0 <= self.col <= GRID - span):
            raise ValueError(
                f"a {self.size} object at (row {self.row}, col {self.col}) leaves the {GRID}x{GRID} grid; "
                f"rows and columns must lie in 0..{GRID - span}"
            )

    @property
    def span(self) -> int:
        return SIZE_CELLS[self.size]

    @property
    def cells(self) -> frozenset[tuple[int, int]]:
        return frozenset((self.row + dr, self.col + dc) for dr in range(self.span) for dc in range(self.span))

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Pixel bounding box (x0, y0, x1, y1) of the drawn shape: its patches less the 1-pixel margin."""
        x0, y0 = self.col * PATCH + 1, self.row * PATCH + 1
        extent = self.span * PATCH - 2
        return (x0, y0, x0 + extent, y0 + extent)

    @property
    def appearance(self) -> tuple[str, str, str]:
        return (self.shape, self.color, self.texture)

    def moved(self, **changes) -> "Obj":
        return Obj(**{**asdict(self), **changes})


@dataclass(frozen=True)
class Scene:
    """A few objects on a plain background. Objects may touch but never share a patch."""

    objects: tuple[Obj, ...] = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "objects", tuple(self.objects))
        taken: dict[tuple[int, int], int] = {}
        for i, obj in enumerate(self.objects):
            for cell in obj.cells:
                if cell in taken:
                    raise ValueError(f"objects {taken[cell]} and {i} overlap at grid cell {cell}")
                taken[cell] = i

    def occupied(self) -> set[tuple[int, int]]:
        return {cell for obj in self.objects for cell in obj.cells}

    def sorted(self) -> "Scene":
        """The same scene with objects in reading order (row, col): a canonical form for comparisons."""
        return Scene(tuple(sorted(self.objects, key=lambda o: (o.row, o.col))))

    def to_dict(self) -> dict:
        return {"objects": [asdict(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        return cls(tuple(Obj(**o) for o in data["objects"]))


def free_anchors(occupied: set[tuple[int, int]], size: str) -> list[tuple[int, int]]:
    """Grid cells where an object of `size` fits without touching `occupied` patches."""
    span = SIZE_CELLS[size]
    return [
        (r, c)
        for r in range(GRID - span + 1)
        for c in range(GRID - span + 1)
        if not any((r + dr, c + dc) in occupied for dr in range(span) for dc in range(span))
    ]


def random_object(rng, occupied: set[tuple[int, int]] | None = None, **fixed) -> Obj | None:
    """A random object (attributes in `fixed` kept) at a random free place; None when nothing fits."""
    rng = as_rng(rng)
    attrs = {
        "shape": fixed.get("shape") or SHAPES[rng.integers(len(SHAPES))],
        "color": fixed.get("color") or COLOR_NAMES[rng.integers(len(COLOR_NAMES))],
        "texture": fixed.get("texture") or TEXTURES[rng.integers(len(TEXTURES))],
        "size": fixed.get("size") or SIZES[rng.integers(len(SIZES))],
    }
    anchors = free_anchors(occupied or set(), attrs["size"])
    if not anchors:
        return None
    row, col = anchors[rng.integers(len(anchors))]
    return Obj(row=int(row), col=int(col), **attrs)


def random_scene(rng, num_objects: int | None = None, max_objects: int = 4) -> Scene:
    """A scene of `num_objects` random objects (1..max_objects uniformly when None), placed without overlap."""
    rng = as_rng(rng)
    if num_objects is None:
        num_objects = int(rng.integers(1, max_objects + 1))
    if not 0 <= num_objects <= 16:
        raise ValueError(f"num_objects must lie in 0..16 (16 large objects fill the grid), got {num_objects}")
    objects: list[Obj] = []
    occupied: set[tuple[int, int]] = set()
    for _ in range(num_objects):
        obj = random_object(rng, occupied)
        if obj is None:  # a large object no longer fits: a small one always does while cells are free
            obj = random_object(rng, occupied, size="small")
        objects.append(obj)
        occupied |= obj.cells
    return Scene(tuple(objects))
