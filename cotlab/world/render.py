"""Pixels of ShapeWorld: drawing, the designed patch codebook, and parsing images back into scenes.

An object is drawn into a tile of its own (8x8 px small, 16x16 px large, 1 px margin) from an analytic mask and a
texture pattern. The codebook is designed, not learned: code 0 is the background patch; then, for every appearance
(shape, colour, texture), one code for the small object and one for each quadrant (TL, TR, BL, BR) of the large one:
1 + 5 x 10 x 3 x 5 = 751 codes, each an 8x8 RGB patch. A scene is therefore exactly 64 codes (8x8 grid, reading order),
and a clean render is exactly the tiling of those codes' patches; any 64 codes decode to an image, so an incoherent
sequence (a quadrant without its partners) shows as a broken shape.

Parsing is the inverse: each patch is matched to its nearest codebook patch; a match further than `MAX_PATCH_RMSE`
is "unrecognised" (noise, blur beyond repair, foreign pixels); small-object codes are objects; quadrant codes form a
large object only when all four sit in place with one appearance, otherwise they are fragments, not objects.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from .scene import (
    BACKGROUND, CANVAS, COLOR_NAMES, COLORS, GRID, PATCH, SHAPES, SIZE_CELLS, TEXTURES, Obj, Scene,
)

APPEARANCES = tuple(itertools.product(SHAPES, COLOR_NAMES, TEXTURES))
PARTS = ("small", "tl", "tr", "bl", "br")  # code layout per appearance
QUADRANT_OFFSETS = {"tl": (0, 0), "tr": (0, 1), "bl": (1, 0), "br": (1, 1)}
CODEBOOK_SIZE = 1 + len(APPEARANCES) * len(PARTS)
NUM_TOKENS = GRID * GRID
# A patch matches a code when its root-mean-square distance (0-255 scale) is at most this. Clean renders match at 0;
# the nearest wrong code of a clean patch is far above this (see tests); mild blur stays below it.
MAX_PATCH_RMSE = 40.0


def shade_of(rgb: tuple[int, int, int]) -> np.ndarray:
    """The pattern colour of a texture: the object's colour moved 30% towards black (light colours) or white
    (dark ones), so stripes and dots keep the hue and a blurred object keeps its colour."""
    c = np.asarray(rgb, dtype=np.float64)
    luminance = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
    target = 0.0 if luminance > 100 else 255.0
    return np.round(c + 0.3 * (target - c))


def shape_mask(shape: str, tile: int) -> np.ndarray:
    """Boolean (tile, tile) mask of `shape` drawn in a tile with a 1-pixel margin, from pixel centres in [-1, 1]."""
    inner = tile - 2
    centres = (np.arange(inner) + 0.5) / inner * 2 - 1
    v, u = np.meshgrid(centres, centres, indexing="ij")  # v grows downwards
    if shape == "square":
        mask = np.ones_like(u, dtype=bool)
    elif shape == "circle":
        mask = u**2 + v**2 <= 1.0
    elif shape == "triangle":  # apex up
        mask = np.abs(u) <= (v + 1) / 2 + 0.1
    elif shape == "diamond":
        mask = np.abs(u) + np.abs(v) <= 1.17
    elif shape == "cross":
        mask = (np.abs(u) <= 0.45) | (np.abs(v) <= 0.45)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    out = np.zeros((tile, tile), dtype=bool)
    out[1:-1, 1:-1] = mask
    return out


def texture_mask(texture: str, tile: int) -> np.ndarray:
    """Where a texture paints the shade colour: 2-px stripes, or 2x2 dots on a 4-px lattice."""
    y, x = np.meshgrid(np.arange(tile), np.arange(tile), indexing="ij")
    if texture == "solid":
        return np.zeros((tile, tile), dtype=bool)
    if texture == "striped":
        return (y // 2) % 2 == 1
    if texture == "dotted":
        return (x % 4 >= 2) & (y % 4 >= 2)
    raise ValueError(f"unknown texture {texture!r}; expected one of {', '.join(TEXTURES)}")


@lru_cache(maxsize=None)
def object_tile(shape: str, color: str, texture: str, size: str) -> np.ndarray:
    """The (tile, tile, 3) uint8 pixels of one object on the background: 8 px small, 16 px large."""
    tile = SIZE_CELLS[size] * PATCH
    pixels = np.empty((tile, tile, 3), dtype=np.float64)
    pixels[:] = BACKGROUND
    body = shape_mask(shape, tile)
    pattern = body & texture_mask(texture, tile)
    pixels[body] = COLORS[color]
    pixels[pattern] = shade_of(COLORS[color])
    out = pixels.astype(np.uint8)
    out.flags.writeable = False
    return out


def code_of(shape: str, color: str, texture: str, part: str) -> int:
    return 1 + APPEARANCES.index((shape, color, texture)) * len(PARTS) + PARTS.index(part)


@lru_cache(maxsize=1)
def codebook() -> np.ndarray:
    """(CODEBOOK_SIZE, 8, 8, 3) uint8: the patch each code stands for."""
    patches = np.empty((CODEBOOK_SIZE, PATCH, PATCH, 3), dtype=np.uint8)
    patches[0] = BACKGROUND
    for shape, color, texture in APPEARANCES:
        patches[code_of(shape, color, texture, "small")] = object_tile(shape, color, texture, "small")
        large = object_tile(shape, color, texture, "large")
        for part, (dr, dc) in QUADRANT_OFFSETS.items():
            patches[code_of(shape, color, texture, part)] = large[dr * PATCH:(dr + 1) * PATCH, dc * PATCH:(dc + 1) * PATCH]
    patches.flags.writeable = False
    return patches


@lru_cache(maxsize=1)
def code_table() -> tuple[tuple, ...]:
    """code -> (shape, color, texture, part), with None for the background code 0."""
    table = [None] * CODEBOOK_SIZE
    for shape, color, texture in APPEARANCES:
        for part in PARTS:
            table[code_of(shape, color, texture, part)] = (shape, color, texture, part)
    return tuple(table)


def describe_code(code: int) -> str:
    """A readable name of a code, e.g. 'red striped circle (large, tl)' or 'background'."""
    if not 0 <= int(code) < CODEBOOK_SIZE:
        raise ValueError(f"code {code} is outside the codebook (0..{CODEBOOK_SIZE - 1})")
    entry = code_table()[int(code)]
    if entry is None:
        return "background"
    shape, color, texture, part = entry
    return f"{color} {texture} {shape} (small)" if part == "small" else f"{color} {texture} {shape} (large, {part})"


def render_array(scene: Scene) -> np.ndarray:
    """(64, 64, 3) uint8 pixels of a scene: each object's tile pasted at its place on the background."""
    canvas = np.empty((CANVAS, CANVAS, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    for obj in scene.objects:
        tile = object_tile(obj.shape, obj.color, obj.texture, obj.size)
        y, x = obj.row * PATCH, obj.col * PATCH
        canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return canvas


def render(scene: Scene) -> Image.Image:
    """The 64x64 RGB image of a scene; deterministic."""
    return Image.fromarray(render_array(scene), mode="RGB")


def to_array(image) -> np.ndarray:
    """(64, 64, 3) uint8 view of an image: a PIL image in mode RGB or such a numpy array. Anything else is refused."""
    expected = f"a {CANVAS}x{CANVAS} RGB image (PIL mode 'RGB', or a uint8 array of shape ({CANVAS}, {CANVAS}, 3))"
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(f"expected {expected}; got a PIL image in mode {image.mode!r} (convert it with .convert('RGB'))")
        if image.size != (CANVAS, CANVAS):
            raise ValueError(f"expected {expected}; got a PIL image of size {image.size[0]}x{image.size[1]}")
        return np.asarray(image, dtype=np.uint8)
    if isinstance(image, np.ndarray):
        if image.shape != (CANVAS, CANVAS, 3) or image.dtype != np.uint8:
            raise ValueError(f"expected {expected}; got an array of shape {image.shape} and dtype {image.dtype}")
        return image
    raise TypeError(f"expected {expected}; got {type(image).__name__}")


@lru_cache(maxsize=1)
def _flat_codebook() -> tuple[np.ndarray, np.ndarray]:
    flat = codebook().reshape(CODEBOOK_SIZE, -1).astype(np.float32)
    return flat, (flat**2).sum(axis=1)


@lru_cache(maxsize=1)
def _exact_codes() -> dict[bytes, int]:
    return {patch.tobytes(): code for code, patch in enumerate(codebook())}


def nearest_codes(arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vector quantisation against the designed codebook: for (N, 64, 64, 3) uint8 images, the nearest code of every
    patch (N, 64) and its root-mean-square distance per channel value (N, 64)."""
    n = arrays.shape[0]
    grid = np.ascontiguousarray(arrays.reshape(n, GRID, PATCH, GRID, PATCH, 3).transpose(0, 1, 3, 2, 4, 5))
    patches = grid.reshape(n * GRID * GRID, PATCH * PATCH * 3)
    # Decoded and clean images consist of codebook patches exactly: a byte lookup finds those.
    exact = _exact_codes()
    codes = np.fromiter((exact.get(p.tobytes(), -1) for p in patches), dtype=np.int64, count=len(patches))
    rmse = np.zeros(len(patches), dtype=np.float64)
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        rest = patches[missing].astype(np.float32)
        flat, sq = _flat_codebook()
        # |p - c|^2 = |p|^2 - 2 p.c + |c|^2 as one matrix product; float32 rounding is far below the gap between codes.
        dist = (rest**2).sum(axis=1, keepdims=True) - 2.0 * rest @ flat.T + sq
        codes[missing] = dist.argmin(axis=1)
        best = dist[np.arange(missing.size), codes[missing]]
        rmse[missing] = np.sqrt(np.maximum(best, 0.0) / rest.shape[1])
    return codes.reshape(n, GRID * GRID), rmse.reshape(n, GRID * GRID)


class PatchTokenizer:
    """ShapeWorld's image tokenizer: a VQ whose codebook is designed (see the module docstring).

    `encode` takes scenes (exact by construction) or images (nearest code per patch, exact on clean renders) and
    returns a (N, 64) int64 tensor; `decode` takes any (N, 64) codes and returns PIL images.
    """

    codebook_size = CODEBOOK_SIZE
    num_tokens = NUM_TOKENS
    grid = GRID
    patch = PATCH
    image_size = CANVAS

    def encode(self, items) -> "torch.Tensor":
        import torch

        items = list(items)
        if not items:
            raise ValueError("encode needs at least one scene or image")
        if all(isinstance(x, Scene) for x in items):
            return torch.as_tensor(np.stack([scene_codes(s) for s in items]), dtype=torch.long)
        arrays = np.stack([to_array(x) for x in items])
        return torch.as_tensor(nearest_codes(arrays)[0], dtype=torch.long)

    def decode(self, codes) -> list[Image.Image]:
        return [Image.fromarray(a, mode="RGB") for a in decode_arrays(codes)]


def scene_codes(scene: Scene) -> np.ndarray:
    """The 64 codes of a scene in reading order."""
    grid = np.zeros((GRID, GRID), dtype=np.int64)
    for obj in scene.objects:
        if obj.size == "small":
            grid[obj.row, obj.col] = code_of(obj.shape, obj.color, obj.texture, "small")
        else:
            for part, (dr, dc) in QUADRANT_OFFSETS.items():
                grid[obj.row + dr, obj.col + dc] = code_of(obj.shape, obj.color, obj.texture, part)
    return grid.reshape(-1)


def decode_arrays(codes) -> np.ndarray:
    """(N, 64) codes (tensor, array or nested lists) -> (N, 64, 64, 3) uint8 pixels."""
    codes = np.asarray(codes.detach().cpu() if hasattr(codes, "detach") else codes)
    if codes.ndim == 1:
        codes = codes[None]
    if codes.ndim != 2 or codes.shape[1] != NUM_TOKENS:
        raise ValueError(f"expected codes of shape (N, {NUM_TOKENS}), got {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
    if codes.size and (codes.min() < 0 or codes.max() >= CODEBOOK_SIZE):
        raise ValueError(f"codes must lie in 0..{CODEBOOK_SIZE - 1}, got values in {codes.min()}..{codes.max()}")
    n = codes.shape[0]
    patches = codebook()[codes]  # (N, 64, 8, 8, 3)
    return patches.reshape(n, GRID, GRID, PATCH, PATCH, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, CANVAS, CANVAS, 3)


@dataclass(frozen=True)
class PatchReading:
    """What the parser saw: the scene it recovered, plus what it could not make into objects."""

    scene: Scene
    codes: np.ndarray  # (64,) nearest code per patch
    rmse: np.ndarray  # (64,) distance to that code
    unrecognised: tuple[tuple[int, int], ...]  # patches matching no code
    fragments: tuple[tuple[int, int], ...]  # quadrant patches that belong to no complete large object


def read_patches(image) -> PatchReading:
    """Parse one image, keeping the diagnostics (see `parse`)."""
    return read_patch_batch([image])[0]


def read_patch_batch(images) -> list[PatchReading]:
    arrays = np.stack([to_array(x) for x in images])
    all_codes, all_rmse = nearest_codes(arrays)
    table = code_table()
    recognised_all = all_rmse <= MAX_PATCH_RMSE
    grids = np.where(recognised_all, all_codes, -1).tolist()  # Python ints: the scan below indexes them one by one
    readings = []
    for codes, rmse, recognised, grid in zip(all_codes, all_rmse, recognised_all, grids):
        objects, used = [], set()
        for i, code in enumerate(grid):
            if code <= 0:
                continue
            r, c = divmod(i, GRID)
            shape, color, texture, part = table[code]
            if part == "small":
                objects.append(Obj(shape, color, texture, "small", r, c))
            # a large object: tl, tr, bl, br of one appearance in place (their codes follow tl's, in PARTS order)
            elif part == "tl" and r + 1 < GRID and c + 1 < GRID and (
                    grid[i + 1] == code + 1 and grid[i + GRID] == code + 2 and grid[i + GRID + 1] == code + 3):
                objects.append(Obj(shape, color, texture, "large", r, c))
                used |= {i, i + 1, i + GRID, i + GRID + 1}
        fragments = tuple(divmod(i, GRID) for i, code in enumerate(grid)
                          if code > 0 and table[code][3] != "small" and i not in used)
        unrecognised = tuple((int(i) // GRID, int(i) % GRID) for i in np.flatnonzero(~recognised))
        readings.append(PatchReading(Scene(tuple(objects)), codes, rmse, unrecognised, fragments))
    return readings


def parse(image) -> Scene:
    """Recover the objects of an image from its pixels (exact on clean renders; never invents objects from
    fragments or unrecognised patches)."""
    return read_patches(image).scene
