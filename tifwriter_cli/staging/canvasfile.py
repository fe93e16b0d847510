"""The staging file itself: the canvas description, written once by ``init``."""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy

from ..atomic import atomic_output
from ..errors import (
    NotAStagingFileError,
    OutputExistsError,
    StagingNotFoundError,
    StagingVersionError,
    TifwriterError,
    one_line,
)
from ..markers import STAGING_FORMAT_NAME
from ..spec import CanvasSpec
from .h5io import GuardedFile, attribute_text, create_hdf5, text_attribute
from .layout import FORMAT_VERSION, READABLE_FORMAT_VERSIONS, fragments_dir

__all__ = ['create_staging', 'read_canvas', 'StagingHeader']


class StagingHeader:
    """What the staging file says: the canvas, its identity, when it was made."""

    def __init__(
        self, path: Path, spec: CanvasSpec, uid: str, created: str, tool: str,
        format_version: int = FORMAT_VERSION,
    ):
        self.path = path
        self.format_version = format_version  # the unit's own (older ones are read too)
        self.spec = spec
        self.uid = uid
        self.created = created
        self.tool = tool

    def __repr__(self) -> str:
        return f'StagingHeader({str(self.path)!r}, {self.spec!r})'


def create_staging(
    path: str | os.PathLike, spec: CanvasSpec, *, overwrite: bool = False
) -> StagingHeader:
    """Create a staging file (and its empty fragments directory) for ``spec``.

    Refuses to replace an existing staging file unless ``overwrite``; with
    ``overwrite`` its fragments are removed too, since they belong to the old
    canvas.
    """
    from .. import __version__

    path = Path(path)
    frag_dir = fragments_dir(path)
    if not overwrite and (path.exists() or frag_dir.exists()):
        what = path if path.exists() else frag_dir
        raise OutputExistsError(f'{what} exists (use overwrite=True to replace it)')
    if overwrite and frag_dir.exists():
        _check_fragments_are_ours(frag_dir)
    uid = uuid.uuid4().hex
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    replaced = None
    with atomic_output(path, overwrite=overwrite) as tmp:
        guard = GuardedFile(tmp)
        try:
            with create_hdf5(guard) as h5:
                h5.attrs['format'] = text_attribute(STAGING_FORMAT_NAME)
                h5.attrs['format_version'] = FORMAT_VERSION
                h5.attrs['uid'] = text_attribute(uid)
                h5.attrs['created'] = text_attribute(created)
                h5.attrs['tool'] = text_attribute(f'tifwriter {__version__}')
                canvas = h5.create_group('canvas')
                for key, value in spec.to_attrs().items():
                    canvas.attrs[key] = text_attribute(value)
            guard.sync()
        finally:
            guard.close()
        guard.check()
        # The old fragments belong to the old canvas. Their directory is
        # moved aside (one atomic rename: a stale writer's publish then
        # fails) and a new one made before the new header becomes visible;
        # the old one is deleted after.
        if frag_dir.exists():
            replaced = frag_dir.with_name(f'.{frag_dir.name}.replaced-{uid[:12]}')
            os.rename(frag_dir, replaced)
        frag_dir.mkdir()
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    return StagingHeader(path, spec, uid, created, f'tifwriter {__version__}')


def _check_fragments_are_ours(frag_dir: Path) -> None:
    """--overwrite removes the old fragments: only if that is all the folder holds."""
    from .layout import is_fragment_name

    if not frag_dir.is_dir():
        raise OutputExistsError(f'{frag_dir} exists and is not a fragments directory; move it away')
    foreign = [name for name in os.listdir(frag_dir) if not is_fragment_name(name)]
    if foreign:
        raise OutputExistsError(
            f'{frag_dir} holds files tifwriter did not write (e.g. {foreign[0]!r}); '
            '--overwrite would delete them: move them away first'
        )


def read_canvas(path: str | os.PathLike) -> StagingHeader:
    """Open and validate a staging file; return its header."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise StagingNotFoundError(f'staging file {path} does not exist: create it first with create_staging()')
    if path.is_dir():
        raise NotAStagingFileError(f'{path} is a directory, not a staging file')
    try:
        h5file = h5py.File(path, 'r', locking=False)
    except OSError as exc:
        raise NotAStagingFileError(
            f'{path} is not a tifwriter staging file (not HDF5, or damaged: {one_line(exc)})'
        ) from None
    with contextlib.closing(h5file) as h5:
        try:
            return _read_header(h5, path)
        except TifwriterError:
            raise
        except Exception as exc:  # noqa: BLE001  (see below)
            # A damaged file (a flipped bit, a truncated copy) fails inside
            # HDF5 in many ways (KeyError, RuntimeError, OSError, ...); its
            # metadata checksums make sure it fails rather than misreads.
            raise NotAStagingFileError(
                f'{path} is damaged and cannot be read as a staging file: {one_line(exc)}'
            ) from None


def _read_header(h5: Any, path: Path) -> StagingHeader:
    attrs = dict(h5.attrs)
    fmt = attribute_text(attrs.get('format'), '')
    if fmt != STAGING_FORMAT_NAME or 'canvas' not in h5:
        raise NotAStagingFileError(f'{path} is an HDF5 file but not a tifwriter staging file')
    version = check_format_version(attrs.get('format_version'), what=f'{path} has staging format')
    try:
        spec = CanvasSpec.from_attrs(dict(h5['canvas'].attrs))
    except (TypeError, ValueError) as exc:
        raise NotAStagingFileError(f'{path} has an invalid canvas description: {exc}') from None
    return StagingHeader(
        path, spec, attribute_text(attrs.get('uid'), ''), attribute_text(attrs.get('created'), ''),
        attribute_text(attrs.get('tool'), ''),
        version,
    )


def check_format_version(value: object, *, what: str) -> int:
    """Refuse any ``format_version`` this tifwriter does not read (an integer
    of READABLE_FORMAT_VERSIONS, not 1.5 or "1" or an array), with one line
    saying ``what`` has which. Returns the version."""
    if isinstance(value, numpy.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, numpy.generic):
        value = value.item()
    ok = isinstance(value, int) and not isinstance(value, bool) and value in READABLE_FORMAT_VERSIONS
    if not ok:
        shown = 'none' if value is None else repr(value) if not isinstance(value, numpy.ndarray) else f'an array {value.tolist()!r}'[:80]
        raise StagingVersionError(
            f'{what} version {shown}; this tifwriter reads versions '
            f'{", ".join(map(str, READABLE_FORMAT_VERSIONS))} (use the tifwriter that created it)'
        )
    return value
