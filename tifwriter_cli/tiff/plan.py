"""The pyramid plan: which levels to write and each level's tile size.

Rules (see /work/shared/COMPAT.md, "A level smaller than its tile"):

* Level k+1 is level k halved, rounding up (``ceil(n / 2)``); its pixels
  cover 2**k level-0 pixels per side, so its downsample is exactly 2**k.
* The pyramid continues while the long side of the last level is larger
  than ``overview_max`` (1024), like ASAP, so there is always an overview
  level of at most about 1024 px on its long side.
* No level gets a tile larger than the level itself (Debian's OpenSlide
  3.4.1 reads such levels as garbage). A level's tile is the largest
  multiple of 16 that is <= min(level width, level height, canvas tile
  size). The pyramid stops before a level whose short side is under 16 px,
  since no valid tile would fit in it.
* A canvas under 16 px on a side cannot follow that rule (TIFF tiles are
  multiples of 16): it is written as a single level with a 16-px tile that
  readers crop (padding is unavoidable there).
* Each level is strictly narrower than the one before (ASAP refuses the
  file otherwise); halving guarantees it for widths >= 2.
"""

from __future__ import annotations

import dataclasses

from .pyramid import halved

__all__ = ['LevelPlan', 'plan_pyramid', 'OVERVIEW_MAX', 'MIN_TILE']

#: Stop halving once the long side is at most this (ASAP's convention).
OVERVIEW_MAX = 1024
#: TIFF tiles must be multiples of 16; this is the smallest tile.
MIN_TILE = 16


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


def level_tile(width: int, height: int, tile_size: int) -> int:
    """Largest multiple of 16 <= min(width, height, tile_size); 16 at least."""
    return max(MIN_TILE, min(width, height, tile_size) // MIN_TILE * MIN_TILE)


def plan_pyramid(
    width: int, height: int, tile_size: int, *, overview_max: int = OVERVIEW_MAX
) -> list[LevelPlan]:
    """The levels for a ``width`` x ``height`` canvas with tiles of ``tile_size``."""
    if tile_size < MIN_TILE or tile_size % MIN_TILE:
        raise ValueError(f'tile size must be a positive multiple of 16, got {tile_size}')
    levels = [LevelPlan(0, width, height, level_tile(width, height, tile_size))]
    while max(levels[-1].width, levels[-1].height) > overview_max:
        last = levels[-1]
        next_width, next_height = halved(last.width), halved(last.height)
        if min(next_width, next_height) < MIN_TILE or next_width >= last.width:
            break
        levels.append(
            LevelPlan(
                last.index + 1,
                next_width,
                next_height,
                level_tile(next_width, next_height, tile_size),
            )
        )
    return levels
