"""The decision-boundary image both trainers log: class regions and validation points, as a PNG.

Pure NumPy and ``zlib``, no matplotlib: a trainer logs one at every reported epoch, so
it must cost little beside an epoch. The picture is ``compare.py``'s boundary panel
without axes: the predicted class over a grid spanning the validation points (plus a
margin), pale; each validation point in its true class's colour; a black ring around
each one the model gets wrong. Row 0 is the top of the plane (largest ``x2``).

Each trainer passes its own ``predict`` (its model, eval mode), so the image shows what
that trainer's model computes; the grid and the drawing are shared (``BoundaryImage``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import numpy as np

# points (N, 2) float32 -> predicted class (N,)
Predict = Callable[[np.ndarray], np.ndarray]

# the grid spans the points plus this fraction of their extent on every side: relative, so a set
# of any scale (blobs, unit-radius spirals, a user's file) fills the picture
GRID_MARGIN = 0.15
GRID_CELLS = 64  # per axis: the model is evaluated at GRID_CELLS**2 points (one evaluation chunk)
CELL_PIXELS = 4  # each grid cell is CELL_PIXELS x CELL_PIXELS pixels
IMAGE_SIZE = GRID_CELLS * CELL_PIXELS  # 256 x 256 pixels
POINT_RADIUS = 3.0  # pixels
RING_RADII = (4.5, 6.0)  # the misclassified marker: inner and outer radius, pixels
# matplotlib's tab10, class by class (cycled beyond ten classes)
PALETTE = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
     [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
    dtype=np.uint8,
)  # fmt: skip
REGION_ALPHA = 0.3  # a region is its class colour this strong over white
RING_COLOR = (0, 0, 0)


def image_palette() -> np.ndarray:
    """The PNG's colours (21, 3) uint8: the pale regions, then the points, then the ring."""
    regions = np.round(255 - REGION_ALPHA * (255 - PALETTE.astype(np.float64))).astype(np.uint8)
    return np.concatenate([regions, PALETTE, np.array([RING_COLOR], dtype=np.uint8)])


_POINT, _RING = len(PALETTE), 2 * len(PALETTE)  # palette offsets of the point colours and the ring


def grid_axes(
    X: np.ndarray, cells: int = GRID_CELLS, margin: float = GRID_MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """x1 and x2 values (``cells`` each, ascending) spanning ``X`` (N, 2), ``margin`` of its extent wider."""
    pad = margin * np.maximum(X.max(axis=0) - X.min(axis=0), 1e-6)  # (2,)
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    return np.linspace(lo[0], hi[0], cells), np.linspace(lo[1], hi[1], cells)


class BoundaryImage:
    """The image of one validation split (``X`` (N, 2), labels ``y`` (N,)); ``png(predict)`` per epoch.

    What does not change between epochs (the grid, where each point is drawn, the
    palette) is computed once, here.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        xs, ys = grid_axes(X)
        xx, yy = np.meshgrid(xs, ys[::-1])  # row 0: the top of the plane
        self.grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)  # (G*G, 2)
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.y = np.asarray(y)
        span = IMAGE_SIZE - 1
        cols = np.rint((X[:, 0] - xs[0]) / (xs[-1] - xs[0]) * span).astype(np.intp)
        rows = np.rint((ys[-1] - X[:, 1]) / (ys[-1] - ys[0]) * span).astype(np.intp)
        self._discs = _stamps(rows, cols, 0.0, POINT_RADIUS)  # (N, K) flat pixel indices, -1: outside
        self._rings = _stamps(rows, cols, *RING_RADII)
        self._disc_colors = np.broadcast_to((_POINT + self.y % len(PALETTE))[:, None], self._discs.shape)
        self.palette = image_palette()

    def pixels(self, predict: Predict) -> np.ndarray:
        """The image as (IMAGE_SIZE, IMAGE_SIZE) uint8 indices into ``image_palette()``."""
        cells = np.asarray(predict(self.grid)).reshape(GRID_CELLS, GRID_CELLS) % len(PALETTE)
        image = cells.astype(np.uint8).repeat(CELL_PIXELS, axis=0).repeat(CELL_PIXELS, axis=1)  # (S, S)
        flat = image.reshape(-1)
        inside = self._discs >= 0
        flat[self._discs[inside]] = self._disc_colors[inside]
        rings = self._rings[np.asarray(predict(self.X)) != self.y]  # the misclassified points'
        flat[rings[rings >= 0]] = _RING
        return image

    def png(self, predict: Predict) -> bytes:
        """The PNG (IMAGE_SIZE square) of ``predict``'s regions and the points, misclassified ones ringed."""
        return encode_png(self.pixels(predict), self.palette)


def _stamps(rows: np.ndarray, cols: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """Flat indices (N, K) of the pixels at a distance in [inner, outer] of each point; -1 off the image."""
    d = np.arange(-int(np.ceil(outer)), int(np.ceil(outer)) + 1)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    r2 = dy * dy + dx * dx
    keep = (r2 >= inner * inner) & (r2 <= outer * outer)
    rr, cc = rows[:, None] + dy[keep], cols[:, None] + dx[keep]  # (N, K)
    inside = (rr >= 0) & (rr < IMAGE_SIZE) & (cc >= 0) & (cc < IMAGE_SIZE)
    return np.where(inside, rr * IMAGE_SIZE + cc, -1)


def encode_png(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """A PNG file of ``indices`` (H, W) uint8 into ``palette`` (K, 3) uint8 RGB: 8-bit indexed colour.

    No filter and one zlib stream at level 1: the flat regions compress well even so,
    and it is the fastest level (the image is encoded while a run trains).
    """
    height, width = indices.shape
    scanlines = np.zeros((height, 1 + width), dtype=np.uint8)  # each row: filter type 0, then the indices
    scanlines[:, 1:] = indices
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8 bits, indexed, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"PLTE", np.ascontiguousarray(palette, dtype=np.uint8).tobytes())
        + _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 1))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
