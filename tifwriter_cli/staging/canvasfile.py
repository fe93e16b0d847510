"""The staging file itself: the canvas description, written once by ``init``."""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import uuid
from pathlib import Path

from ..atomic import atomic_output
from ..errors import (
    NotAStagingFileError,
    OutputExistsError,
    StagingNotFoundError,
    StagingVersionError,
)
from ..spec import CanvasSpec
from .layout import FORMAT_NAME, FORMAT_VERSION, READABLE_FORMAT_VERSIONS, fragments_dir

__all__ = ['create_staging', 'read_canvas', 'StagingHeader']


class StagingHeader:
    """What the staging file says: the canvas, its identity, when it was made."""

    def __init__(self, path: Path, spec: CanvasSpec, uid: str, created: str, tool: str):
        self.path = path
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
    import h5py

    from .. import __version__

    path = Path(path)
    frag_dir = fragments_dir(path)
    if not overwrite and (path.exists() or frag_dir.exists()):
        what = path if path.exists() else frag_dir
        raise OutputExistsError(f'{what} exists (use --overwrite to replace it)')
    if overwrite and frag_dir.exists():
        _check_fragments_are_ours(frag_dir)
    uid = uuid.uuid4().hex
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    with atomic_output(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, 'w', locking=False) as h5:  # HPC filesystems refuse locks
            h5.attrs['format'] = FORMAT_NAME
            h5.attrs['format_version'] = FORMAT_VERSION
            h5.attrs['uid'] = uid
            h5.attrs['created'] = created
            h5.attrs['tool'] = f'tifwriter {__version__}'
            canvas = h5.create_group('canvas')
            for key, value in spec.to_attrs().items():
                canvas.attrs[key] = value
        # The old fragments belong to the old canvas: drop them before the
        # new staging file becomes visible.
        if frag_dir.exists():
            shutil.rmtree(frag_dir)
        frag_dir.mkdir()
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
    except OSError:
        raise NotAStagingFileError(f'{path} is not a tifwriter staging file (not HDF5)') from None
    with contextlib.closing(h5file) as h5:
        attrs = dict(h5.attrs)
        fmt = _text(attrs.get('format'))
        if fmt != FORMAT_NAME or 'canvas' not in h5:
            raise NotAStagingFileError(
                f'{path} is an HDF5 file but not a tifwriter staging file'
            )
        version = int(attrs.get('format_version', -1))
        if version not in READABLE_FORMAT_VERSIONS:
            raise StagingVersionError(
                f'{path} has staging format version {version}; this tifwriter reads '
                f'version {FORMAT_VERSION} (use the tifwriter that created it)'
            )
        try:
            spec = CanvasSpec.from_attrs(dict(h5['canvas'].attrs))
        except (TypeError, ValueError) as exc:
            raise NotAStagingFileError(f'{path} has an invalid canvas description: {exc}') from None
        return StagingHeader(
            path, spec, _text(attrs.get('uid')), _text(attrs.get('created')), _text(attrs.get('tool'))
        )


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return '' if value is None else str(value)
