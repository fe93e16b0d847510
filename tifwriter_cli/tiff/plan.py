"""The pyramid plan: which levels to write, and the one tile size they share.

Rules (see /work/shared/COMPAT.md and :mod:`.compat`):

* Level k+1 is level k halved, rounding up (``ceil(n / 2)``); its pixels
  cover 2**k level-0 pixels per side, so its downsample is exactly 2**k.
  Halving makes each level strictly narrower than the one before (ASAP
  refuses the file otherwise).
* The pyramid continues while the long side of the last level is larger
  than ``overview_max`` (1024), like ASAP, so there is an overview level of
  at most about 1024 px on its long side; it stops before a level whose
  short side is under 16 px (no valid tile would fit in it).
* ONE tile size on every level: large_image uses only the levels whose tile
  equals level 0's and rebuilds the others itself (with LANCZOS, which
  invents label values).
* No level gets a tile larger than the level itself (Debian's OpenSlide
  3.4.1 reads such levels as garbage). So the shared tile is the largest
  multiple of 16 that is <= the canvas tile size and <= the short side of
  the smallest level.
* Only when that would leave a tile under ``MIN_SHARED_TILE`` (a canvas
  more than ~4x longer than wide) does the pyramid stop earlier instead,
  before the first level whose short side is under ``MIN_SHARED_TILE``
  (its overview is then longer than 1024 px): tiny tiles on a whole canvas
  cost far more than a larger overview. Not when that would leave
  one level 4096 px wide or more, which ASAP refuses to open.
* A canvas under 16 px on a side cannot follow the tile rule (TIFF tiles
  are multiples of 16): it is written as a single level with a 16-px tile
  that readers crop (padding is unavoidable there).

Measured (label masks, tile 512; tiles / bytes against stopping the pyramid
before the first level the 512 tile does not fit): 10000 x 7500: 516 vs
406 tiles, 1.33 vs 1.22 MB; 12000 x 5000: 931 vs 324, 1.18 vs 0.97 MB;
20000 x 15000: 1968 vs 1606, 5.13 vs 4.94 MB; finalize time the same
within noise. Stopping earlier leaves overviews of 1125-1500 px, so the
tile shrinks instead, down to ``MIN_SHARED_TILE``. Below it the cost turns:
a 40000 x 4000 strip would get a 48-px tile (93541 tiles, 8.8 MB, 15.2 s)
where stopping at 2500 x 250 with a 240-px tile takes 3890 tiles, 3.4 MB,
2.9 s.
"""

from __future__ import annotations

import dataclasses

from .pyramid import halved
from .readers import ASAP_SINGLE_LEVEL_MAX_WIDTH

__all__ = ['LevelPlan', 'plan_pyramid', 'level_sizes', 'OVERVIEW_MAX', 'MIN_TILE', 'MIN_SHARED_TILE']

#: Stop halving once the long side is at most this (ASAP's convention).
OVERVIEW_MAX = 1024
#: TIFF tiles must be multiples of 16; this is the smallest tile.
MIN_TILE = 16
#: The shared tile never shrinks below this to reach the overview size;
#: the pyramid stops earlier instead (module docstring).
MIN_SHARED_TILE = 128


@dataclasses.dataclass(frozen=True)
class LevelPlan:
    """One pyramid level: its size in pixels, tile size and downsample."""

    index: int
    width: int
    height: int
    tile: int

    @property
    def downsample(self) -> int:
        """Level-0 pixels per pixel of this level, per side."""
        return 1 << self.index

    @property
    def tiles_across(self) -> int:
        return -(-self.width // self.tile)

    @property
    def tiles_down(self) -> int:
        return -(-self.height // self.tile)

    @property
    def tile_count(self) -> int:
        return self.tiles_across * self.tiles_down


def level_sizes(width: int, height: int, *, overview_max: int = OVERVIEW_MAX) -> list[tuple[int, int]]:
    """(width, height) of every level: halved until the overview is small enough."""
    sizes = [(width, height)]
    while max(sizes[-1]) > overview_max:
        last_width, last_height = sizes[-1]
        next_width, next_height = halved(last_width), halved(last_height)
        if min(next_width, next_height) < MIN_TILE or next_width >= last_width:
            break
        sizes.append((next_width, next_height))
    return sizes


def shared_tile(sizes: list[tuple[int, int]], tile_size: int) -> int:
    """Largest multiple of 16 <= tile_size and <= every level's short side; 16 at least."""
    short = min(min(size) for size in sizes)
    return max(MIN_TILE, min(short, tile_size) // MIN_TILE * MIN_TILE)


def plan_pyramid(
    width: int, height: int, tile_size: int, *, overview_max: int = OVERVIEW_MAX
) -> list[LevelPlan]:
    """The levels for a ``width`` x ``height`` canvas with tiles of at most ``tile_size``."""
    if tile_size < MIN_TILE or tile_size % MIN_TILE:
        raise ValueError(f'tile size must be a positive multiple of 16, got {tile_size}')
    sizes = level_sizes(width, height, overview_max=overview_max)
    tile = shared_tile(sizes, tile_size)
    floor = min(tile_size, MIN_SHARED_TILE, shared_tile(sizes[:1], tile_size))
    if tile < floor:
        kept = [size for size in sizes if min(size) >= floor] or sizes[:1]
        if len(kept) > 1 or width < ASAP_SINGLE_LEVEL_MAX_WIDTH:
            sizes, tile = kept, shared_tile(kept, tile_size)
    return [LevelPlan(index, w, h, tile) for index, (w, h) in enumerate(sizes)]
