"""Atomic outputs: write to a temp file beside the target, then rename.

A reader (or ``make``) therefore sees either the old output, or no output,
or the complete new one, never a half-written file. On any failure,
including KeyboardInterrupt, the temp file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import InvalidOptionError, OutputExistsError

__all__ = ['atomic_output', 'check_output_path', 'fsync_directory']


def check_output_path(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Validate an output path early, before any expensive work."""
    path = Path(path)
    if path.is_dir():
        raise InvalidOptionError(f'{path} is a directory, not a file path')
    if path.exists() and not overwrite:
        raise OutputExistsError(f'{path} exists (use --overwrite to replace it)')
    parent = path.parent if str(path.parent) else Path('.')
    if not parent.is_dir():
        raise InvalidOptionError(f'directory {parent} does not exist')
    if not os.access(parent, os.W_OK):
        raise InvalidOptionError(f'directory {parent} is not writable')
    return path


def fsync_directory(path: str | os.PathLike) -> None:
    """Make a rename in ``path`` durable (best effort on odd filesystems)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, *, overwrite: bool = False, fsync: bool = True
) -> Iterator[Path]:
    """Yield a temp path in the target's directory; rename it to ``path`` on success.

    Example::

        with atomic_output('out.tif', overwrite=True) as tmp:
            write_everything(tmp)
    """
    path = check_output_path(path, overwrite=overwrite)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent or '.'
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600; an output is shared like any file the user
        # writes, so give it the permissions the umask allows.
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        if fsync:
            with open(tmp, 'rb+') as fh:
                os.fsync(fh.fileno())
        # Checked again: another process may have created it meanwhile.
        if path.exists() and not overwrite:
            raise OutputExistsError(f'{path} exists (use --overwrite to replace it)')
        os.replace(tmp, path)
        if fsync:
            fsync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _umask() -> int:
    """The process umask (read without changing it where Linux allows)."""
    try:
        with open('/proc/self/status') as fh:
            for line in fh:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
