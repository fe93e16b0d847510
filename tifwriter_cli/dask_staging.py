"""Stage a dask array: each block written by the worker that computes it.

:func:`stage_dask_array` turns ``array`` (e.g. predictions computed lazily
with ``map_blocks`` over a slide) into one small dask computation in which
every task computes its block and stages it straight into the staging unit,
through its own writer and its own fragment (docs/staging-format.md, "Why
fragments"). No pixels travel to the client (each task returns one
integer), and nothing is locked: fragments are published by ``link()``.

Retries are safe. Each block is a contribution keyed by the array's place
and the block's position (``dask:<key>@<row>,<col>``): a task that dask runs
again - its worker killed before or after it published, or the whole
computation run again - replaces its earlier staging instead of adding to
it, under every merge rule; a worker killed before publishing leaves only a
temp file that ``tifwriter gc`` removes. Blocks of an earlier staging under
the same key that the new chunking no longer has are withdrawn at the end.

Needs dask (``pip install 'tifwriter[dask]'``); the rest of tifwriter never
imports it. Each block makes one fragment: ``tifwriter compact`` folds them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy

from .errors import EngineUnavailableError, PatchError
from .vocab import LAYOUTS

__all__ = ['DaskStagingReport', 'stage_dask_array']

KEY_PREFIX = 'dask:'


@dataclasses.dataclass(frozen=True)
class DaskStagingReport:
    """What :func:`stage_dask_array` staged."""

    blocks: int  # blocks computed
    staged: int  # of which (partly) inside the canvas
    withdrawn: int  # blocks of an earlier staging under the key, no longer present


def stage_dask_array(
    array: Any,
    staging: str | os.PathLike,
    *,
    x: int = 0,
    y: int = 0,
    convert: str = 'exact',
    key: str | None = None,
    layout: str = 'hwc',
    scheduler: Any = None,
) -> DaskStagingReport:
    """Compute ``array`` block by block, each block staged by its worker.

    ``array``: a dask array (H, W) or (H, W, C) (``layout='chw'``: (C, H, W)),
    placed with its top-left corner at canvas pixel (x, y). ``key`` names
    this array's contribution (default: its place, ``x,y``): staging again
    under the same key replaces block by block; give distinct keys to stage
    several arrays at one place (an ensemble under ``mean``). ``scheduler``
    is passed to ``compute`` (default: the current one, e.g. a
    ``dask.distributed.Client``). Returns a :class:`DaskStagingReport`.
    """
    try:
        import dask.array as da
    except ImportError:
        raise EngineUnavailableError("stage_dask_array needs dask: pip install 'tifwriter[dask]'") from None
    from .staging import open_staging, read_staging

    if not isinstance(array, da.Array):
        raise PatchError(f'stage_dask_array takes a dask array, got {type(array).__name__}')
    if layout not in LAYOUTS:
        raise PatchError(f'layout must be one of {", ".join(LAYOUTS)}, got {layout!r}')
    if layout == 'chw':
        if array.ndim != 3:
            raise PatchError(f"layout='chw' needs a 3-D (C, H, W) array, got shape {array.shape}")
        array = array.transpose(1, 2, 0)
    if array.ndim not in (2, 3):
        raise PatchError(f'a dask array to stage must be (H, W) or (H, W, C), got shape {array.shape}')
    if array.ndim == 3:
        array = array.rechunk({2: -1})  # a block holds every channel of its pixels
    with read_staging(staging) as snapshot:  # refuses a missing or damaged unit up front
        current = set(snapshot.contributions)
    prefix = f'{KEY_PREFIX}{key if key is not None else f"{int(x)},{int(y)}"}@'
    block_rows, block_cols = array.numblocks[0], array.numblocks[1]
    staged = array.map_blocks(
        _stage_block,
        staging=os.fspath(staging),
        x=int(x),
        y=int(y),
        convert=convert,
        prefix=prefix,
        dtype=numpy.int64,
        chunks=((1,) * block_rows, (1,) * block_cols),
        drop_axis=[2] if array.ndim == 3 else [],
        meta=numpy.empty((0, 0), numpy.int64),
    )
    inside = int(staged.sum().compute(scheduler=scheduler))
    # Blocks an earlier staging under this key had and this chunking has not.
    wanted = {_block_key(prefix, r, c, array.chunks) for r in range(block_rows) for c in range(block_cols)}
    stale = sorted(k for k in current if k.startswith(prefix) and k not in wanted)
    if stale:
        with open_staging(staging, publish_every_s=math.inf) as writer:
            spec = writer.spec
            for stale_key in stale:
                # A keyed patch wholly outside the canvas withdraws the key.
                writer.write(spec.width, spec.height, numpy.zeros((1, 1, spec.channels), spec.numpy_dtype), key=stale_key)
    return DaskStagingReport(blocks=block_rows * block_cols, staged=inside, withdrawn=len(stale))


def _block_key(prefix: str, row: int, col: int, chunks: tuple) -> str:
    """The block's key: its pixel position in the array (so another chunking
    gives other keys, found and withdrawn as stale)."""
    return f'{prefix}{sum(chunks[0][:row])},{sum(chunks[1][:col])}'


def _stage_block(block: numpy.ndarray, *, staging: str, x: int, y: int, convert: str, prefix: str,
                 block_info: dict | None = None) -> numpy.ndarray:
    """Runs on the worker: stage one computed block in its own fragment."""
    from .staging import open_staging

    (row0, _), (col0, _) = block_info[0]['array-location'][:2]
    key = f'{prefix}{row0},{col0}'
    # publish_every_s=inf: one publish, when the block is complete.
    with open_staging(staging, publish_every_s=math.inf) as writer:
        inside = writer.write(x + col0, y + row0, numpy.asarray(block), convert=convert, key=key)
    return numpy.full((1, 1), int(inside), numpy.int64)
