"""The files under a snapshot: one held descriptor per live fragment.

A :class:`~.reader.StagingSnapshot` reads nearly every patch with ``pread``
from a descriptor it holds from the moment it loaded the fragment's tables,
so a fragment compacted or replaced under it is still read as it was, and
a read costs the same for 1 or 2000 fragments. The few patches ``pread``
cannot read (larger than one chunk) go through an h5py File opened over a
duplicate of that descriptor. Descriptors past the process's budget are
closed least-recently-read first and reopened by name, and a reopened file
must be the one first read (:meth:`FragmentFiles.same_file`).
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import StagingChangedError, one_line
from .h5io import file_identity
from .integrity import corrupt

__all__ = ['FragmentFiles', 'FragmentVanished']

#: Fragments kept open as h5py Files at once, for the few patches read
#: through h5py (larger than one chunk); nearly all are read with pread.
MAX_OPEN_FRAGMENTS = 128
#: HDF5 chunk cache per open fragment. Small on purpose: patches are mostly
#: read once (the default 1 MiB per file made a 100k x 100k preview grow to
#: 277 MB).
CHUNK_CACHE_BYTES = 256 * 1024
#: At most this many fragment descriptors are held (a snapshot holds one per
#: live fragment, so fragments compacted or replaced under it are still read
#: as they were); past it, or past half the process's open-file limit, the
#: least recently read are closed and reopened by name (and checked to be the
#: same file).
MAX_HELD_DESCRIPTORS = 16384


class FragmentVanished(Exception):
    """A listed fragment was deleted before it was opened (compacted)."""


class FragmentFiles:
    """Descriptors and h5py Files of the fragments ``paths`` (numbered by
    their place in it) of the staging unit ``staging``."""

    def __init__(self, staging: Path, paths: Sequence[Path], sequences: Sequence[int]):
        self.staging = staging
        self.paths = paths
        self.sequences = sequences
        self._max_descriptors = descriptor_budget(len(paths))
        self._descriptors: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._open: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self._file_objects: dict[int, io.FileIO] = {}  # under the h5py Files in _open
        #: (st_dev, st_ino, st_size, st_mtime_ns) of each fragment as first
        #: opened: a reopen must find the same file (see same_file).
        self._identities: dict[int, tuple[int, int, int, int]] = {}

    def open_by_name(self, number: int) -> Any:
        """The fragment as an h5py File opened by its name (to load its
        tables; the caller closes it)."""
        import h5py
        import hdf5plugin  # noqa: F401  (registers the blosc filter)

        path = self.paths[number]
        try:
            # No chunk cache: the tables are read once, patch chunks never.
            h5 = h5py.File(path, 'r', locking=False, rdcc_nbytes=0)
        except OSError as exc:
            if not path.exists():
                raise FragmentVanished(path) from None
            raise corrupt(path, f'it cannot be opened: {one_line(exc)}', self.sequences[number]) from None
        try:
            self.same_file(number, os.fstat(h5.id.get_vfd_handle()))
        except BaseException:
            h5.close()
            raise
        return h5

    def h5(self, number: int) -> Any:
        """The fragment as an h5py File over the held descriptor (for the
        patches pread cannot read), so it is the file the snapshot took even
        if its name was deleted or taken since."""
        import h5py
        import hdf5plugin  # noqa: F401  (registers the blosc filter)

        h5 = self._open.get(number)
        if h5 is not None:
            self._open.move_to_end(number)
            return h5
        path = self.paths[number]
        fd = self.descriptor(number)
        file_object = io.FileIO(os.dup(fd), 'rb', closefd=True)
        try:
            h5 = h5py.File(file_object, 'r', rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as exc:
            file_object.close()
            raise corrupt(path, f'it cannot be opened: {one_line(exc)}', self.sequences[number]) from None
        self._open[number] = h5
        self._file_objects[number] = file_object
        if len(self._open) > MAX_OPEN_FRAGMENTS:
            self._close_h5(next(iter(self._open)))
        return h5

    def descriptor(self, number: int) -> int:
        """The held descriptor of a fragment (opened, or reopened by name and
        checked, when not held). FragmentVanished if its name is gone."""
        fd = self._descriptors.get(number)
        if fd is None:
            if len(self._descriptors) >= self._max_descriptors:
                _, oldest = self._descriptors.popitem(last=False)
                os.close(oldest)
            try:
                fd = os.open(self.paths[number], os.O_RDONLY)
            except FileNotFoundError:
                raise FragmentVanished(self.paths[number]) from None
            try:
                self.same_file(number, os.fstat(fd))
            except BaseException:
                os.close(fd)
                raise
            self._descriptors[number] = fd
        else:
            self._descriptors.move_to_end(number)
        return fd

    def same_file(self, number: int, st: os.stat_result) -> None:
        """A snapshot holds what it took: a fragment reopened by name (open
        files are limited) must be the file first read, not one that took
        its name since (``create_staging(overwrite=True)`` and new writes)."""
        identity = file_identity(st)
        first = self._identities.setdefault(number, identity)
        if first != identity:
            raise StagingChangedError(
                f'fragment {self.paths[number]} was replaced while this snapshot of '
                f'{self.staging} was being read (create_staging(overwrite=True)?): stopped rather than mix in pixels of another file'
            )

    def _close_h5(self, number: int) -> None:
        self._open.pop(number).close()
        self._file_objects.pop(number).close()

    def close(self) -> None:
        while self._descriptors:
            _, fd = self._descriptors.popitem()
            os.close(fd)
        while self._open:
            self._close_h5(next(iter(self._open)))


def descriptor_budget(fragments: int) -> int:
    """How many fragment descriptors a snapshot of ``fragments`` may hold:
    all of them if the open-file limit allows (raising the soft limit up to
    the hard one, as a process holding many files should), within
    :data:`MAX_HELD_DESCRIPTORS`, leaving half the limit to the rest."""
    wanted = min(MAX_HELD_DESCRIPTORS, fragments)
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < 2 * wanted + 256:
            target = 2 * wanted + 256 if hard == resource.RLIM_INFINITY else min(hard, 2 * wanted + 256)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
        if soft == resource.RLIM_INFINITY:
            return max(wanted, 1)
        return max(1, min(wanted, soft // 2))
    except ImportError:  # pragma: no cover - not on POSIX
        return max(1, min(wanted, 128))
