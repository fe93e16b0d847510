"""Where a staging unit lives on disk, and how fragments are published.

A staging unit is two things treated as one by every command:

* ``NAME.h5``: the canvas description, written once by ``init`` (atomically)
  and never modified afterwards;
* ``NAME.h5.fragments/``: one HDF5 file per published writer fragment,
  named ``<sequence>.h5``. A fragment is written under a temporary name
  (``.tmp-*.h5``) by exactly one process and published by an atomic hard
  link to the next free sequence number. Nobody ever modifies a published
  fragment, so a writer killed at any instant can only lose its own
  unpublished temp file.

Why hard links: ``link()`` fails with EEXIST when the name is taken, on local
filesystems and on NFS/Lustre/GPFS alike, so two writers can never claim the
same sequence number and no lock (HDF5's or fcntl's) is needed. The sequence
number is the publish order that the ``overwrite`` merge rule follows.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import uuid
from pathlib import Path

from ..atomic import fsync_directory
from ..errors import StagingWriteError
from ..markers import FRAGMENTS_SUFFIX

__all__ = [
    'FORMAT_VERSION',
    'FRAGMENT_VERSION',
    'READABLE_FORMAT_VERSIONS',
    'fragments_dir',
    'published_fragments',
    'temp_fragment_path',
    'publish_fragment',
    'stale_temp_fragments',
]

#: Bump when the on-disk layout changes incompatibly. Version 2: fragments
#: carry checksums, contribution keys with placements, withdrawals and
#: compacted fragments (an older tifwriter would misread those, so it must
#: refuse the unit); version 1 units are still read (their fragments carry
#: no checksums).
FORMAT_VERSION = 2
#: Staging unit versions this tifwriter reads.
READABLE_FORMAT_VERSIONS = (1, 2)
#: Version of the fragment files this tifwriter writes (attr ``fragment_version``).
FRAGMENT_VERSION = 2

_SEQUENCE_DIGITS = 10
_PUBLISHED = re.compile(rf'^(\d{{{_SEQUENCE_DIGITS}}})\.h5$')
#: The largest sequence number a fragment name can carry.
MAX_SEQUENCE = 10**_SEQUENCE_DIGITS - 1
#: Publish attempts before giving up: each failed link() means another writer
#: took that number just now, so this bounds racing writers, not time.
MAX_PUBLISH_ATTEMPTS = 10_000
_TEMP_PREFIX = '.tmp-'


def fragments_dir(staging: str | os.PathLike) -> Path:
    """The directory holding the fragments of ``staging``."""
    staging = Path(staging)
    return staging.with_name(staging.name + FRAGMENTS_SUFFIX)


def published_fragments(directory: Path) -> list[tuple[int, Path]]:
    """Published fragments as (sequence, path), in publish order.

    Empty files are skipped: with the O_EXCL fallback of
    :func:`publish_fragment` a claimed name is empty until its rename lands.
    """
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _PUBLISHED.match(name)
        if match is None:
            continue
        path = directory / name
        try:
            if path.stat().st_size == 0:
                continue
        except FileNotFoundError:
            continue
        found.append((int(match.group(1)), path))
    found.sort()
    return found


def is_fragment_name(name: str) -> bool:
    """Whether a name in a fragments directory is one tifwriter writes there."""
    return bool(_PUBLISHED.match(name)) or name.startswith(_TEMP_PREFIX)


def host_tag() -> str:
    """This host's name as temp fragment names carry it."""
    return re.sub(r'[^A-Za-z0-9_]', '_', socket.gethostname())[:40]


def temp_fragment_path(directory: Path) -> Path:
    """A fresh, unique temp name for a fragment being written:
    ``.tmp-HOST-PID-RANDOM.h5`` (gc tells a dead writer's by HOST and PID)."""
    return directory / f'{_TEMP_PREFIX}{host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:12]}.h5'


def stale_temp_fragments(directory: Path) -> list[Path]:
    """Temp fragments present now (live writers' or killed writers')."""
    try:
        return sorted(
            directory / n for n in os.listdir(directory) if n.startswith(_TEMP_PREFIX)
        )
    except FileNotFoundError:
        return []


def _next_sequence(directory: Path) -> int:
    highest = 0
    for name in os.listdir(directory):
        match = _PUBLISHED.match(name)
        if match is not None:
            highest = max(highest, int(match.group(1)))
    return highest + 1


def publish_fragment(temp: Path) -> Path:
    """Publish a complete, fsync'ed temp fragment under the next sequence number.

    Returns the published path. The temp file is gone afterwards.
    """
    directory = temp.parent
    for _ in range(MAX_PUBLISH_ATTEMPTS):
        sequence = _next_sequence(directory)
        if sequence > MAX_SEQUENCE:
            raise StagingWriteError(
                f'{directory} holds fragment number {MAX_SEQUENCE}, the largest a fragment '
                'name can carry, so nothing more can be published (a fragment copied or '
                'renamed by hand?)'
            )
        target = directory / f'{sequence:0{_SEQUENCE_DIGITS}d}.h5'
        try:
            os.link(temp, target)
        except FileExistsError:
            continue  # another writer took this number: take the next one
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # Filesystem without hard links: claim the name with O_EXCL, then
            # rename over the (empty, hence ignored by readers) claim.
            try:
                fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            os.close(fd)
            os.replace(temp, target)
            fsync_directory(directory)
            return target
        os.unlink(temp)
        fsync_directory(directory)
        return target
    raise StagingWriteError(
        f'{directory}: no free fragment number after {MAX_PUBLISH_ATTEMPTS} attempts '
        '(every number tried was taken at once)'
    )
