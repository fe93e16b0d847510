"""Shards: which files of a directory one of N parallel ingests stages.

``shard=(I, N)`` takes the files whose relative path hashes to I modulo N
(:func:`in_shard`), so N tasks split a directory without coordinating and
files added later do not move others between shards. Inside a SLURM array
job the shard comes from the array task (:func:`shard_from_environment`).
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Mapping

from ..errors import InvalidOptionError

__all__ = ['checked_shard', 'in_shard', 'parse_shard', 'shard_from_environment']


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    match = re.fullmatch(r'\s*(\d+)\s*/\s*(\d+)\s*', text)
    if match is None:
        raise InvalidOptionError(
            f'shard must be I/N (this task\'s index from 0, and the number of tasks), got {text!r}'
        )
    index, count = int(match.group(1)), int(match.group(2))
    return checked_shard((index, count))


def checked_shard(shard: tuple[int, int]) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise InvalidOptionError(f'shard must be a pair (index, count), got {shard!r}') from None
    if count < 1 or not 0 <= index < count:
        raise InvalidOptionError(
            f'shard {index}/{count}: the index must be 0 to count-1 and count at least 1'
        )
    return index, count


def shard_from_environment(environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """This task's shard when running as a SLURM array task, else None.

    Uses SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT; the index counts from
    SLURM_ARRAY_TASK_MIN (``--array=1-10`` gives shards 0..9) in steps of
    SLURM_ARRAY_TASK_STEP.
    """
    env = os.environ if environ is None else environ
    if 'SLURM_ARRAY_TASK_ID' not in env:
        return None
    if 'SLURM_ARRAY_TASK_COUNT' not in env:
        # Staging every file in every array task would stage each file N times.
        raise InvalidOptionError(
            f"SLURM_ARRAY_TASK_ID={env['SLURM_ARRAY_TASK_ID']!r} is set but SLURM_ARRAY_TASK_COUNT "
            'is not (an old SLURM?): pass shard=(I, N) for this task, or shard "all" to stage every file'
        )
    names = ('SLURM_ARRAY_TASK_ID', 'SLURM_ARRAY_TASK_COUNT', 'SLURM_ARRAY_TASK_MIN', 'SLURM_ARRAY_TASK_STEP')
    try:
        task_id, count = int(env[names[0]]), int(env[names[1]])
        minimum = int(env.get(names[2]) or 0)
        step = int(env.get(names[3]) or 1)
    except ValueError:
        values = ', '.join(f'{n}={env.get(n)!r}' for n in names if n in env)
        raise InvalidOptionError(f'cannot read the SLURM array task from {values}; pass shard=(I, N)') from None
    offset = task_id - minimum
    if step < 1 or offset < 0 or offset % step or not 0 <= offset // step < count:
        raise InvalidOptionError(
            f'cannot derive a shard from SLURM array task {task_id} (min {minimum}, step {step}, '
            f'count {count}): use a plain range (--array=0-{count - 1}) or pass shard=(I, N)'
        )
    return offset // step, count


def in_shard(relpath: str, shard: tuple[int, int] | None) -> bool:
    """Whether a file belongs to ``shard``: a stable hash of its relative path.

    A hash, not the position in the sorted listing, so files added later do
    not move other files between shards.
    """
    if shard is None:
        return True
    index, count = shard
    return zlib.crc32(relpath.encode('utf-8', 'surrogateescape')) % count == index
