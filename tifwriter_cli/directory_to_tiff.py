"""One shot: a directory of patch files to a pyramidal TIFF (``tifwriter convert``).

``init`` + ``ingest-npy-dir`` + ``finalize`` for the single-machine case:
:func:`directory_to_tiff` creates a staging unit for the canvas, stages the
directory into it and writes the TIFF. The staging unit lives in a temp
directory beside the output (same filesystem; removed afterwards, also on
failure or Ctrl-C) unless ``staging=`` names where to keep it: a kept unit
that already exists for the same canvas is reused, so a killed run started
again stages only what is missing (ingest is idempotent).

Nothing is written at ``out`` unless every file was staged: a directory
with a bad file raises :class:`~tifwriter_cli.errors.SourceFileError`
naming it, and no TIFF appears. (Not to be confused with
:mod:`tifwriter_cli.convert`, the value conversion of patches.)

For many slides, run one ``convert`` per slide (docs/guide.md, "Many
slides": a SLURM array over slides, or Make).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import InvalidOptionError, SourceFileError

__all__ = ['ConvertReport', 'directory_to_tiff']


@dataclasses.dataclass
class ConvertReport:
    """What :func:`directory_to_tiff` did: the ingest and finalize reports."""

    ingest: Any  # tifwriter_cli.ingest.IngestReport
    finalize: Any  # tifwriter_cli.finalization.FinalizeReport
    #: The kept staging unit, or None when it was a temp one (removed).
    staging: str | None


def directory_to_tiff(
    directory: str | os.PathLike,
    out: str | os.PathLike,
    spec: Any,
    *,
    staging: str | os.PathLike | None = None,
    pattern: str | None = None,
    recursive: bool = False,
    convert: str = 'exact',
    coords: str = 'canvas',
    overwrite: bool = False,
    **finalize_options: Any,
) -> ConvertReport:
    """Stage every patch file of ``directory`` on a canvas of ``spec`` and write ``out``.

    ``spec``: the :class:`~tifwriter_cli.spec.CanvasSpec` (e.g. from
    :func:`tifwriter_cli.slide.resolve_canvas_geometry` with ``like=``).
    ``pattern``, ``recursive``, ``convert``, ``coords``: as for
    :func:`~tifwriter_cli.ingest.ingest_npy_dir`; ``finalize_options`` (and
    ``overwrite``): as for :func:`~tifwriter_cli.finalization.finalize`.
    ``staging``: keep the staging unit there (reused when it exists with the
    same canvas) instead of in a temp directory.
    """
    from .atomic import check_output_path
    from .finalization import finalize
    from .ingest import DEFAULT_PATTERN, ingest_npy_dir
    from .staging import create_staging, read_canvas

    out = Path(out)
    check_output_path(out, overwrite=overwrite, inputs=(staging,))
    if not Path(directory).is_dir():
        raise InvalidOptionError(f'{directory} is not a directory')
    temp_dir = None
    if staging is None:
        temp_dir = tempfile.mkdtemp(prefix='.tifwriter-convert-', dir=out.parent if str(out.parent) else '.')
        unit = Path(temp_dir) / 'staging.h5'
    else:
        unit = Path(staging)
    try:
        if unit.exists():
            existing = read_canvas(unit).spec
            if existing != spec:
                raise InvalidOptionError(
                    f'{unit} exists for another canvas ({existing.width} x {existing.height} {existing.dtype}, '
                    f'merge {existing.merge}); remove it or keep the staging elsewhere'
                )
        else:
            create_staging(unit, spec)
        with _failures_not_logged():  # raised below, naming the file, instead
            ingested = ingest_npy_dir(
                unit, directory, pattern=pattern or DEFAULT_PATTERN, recursive=recursive,
                convert=convert, coords=coords, on_error='skip',
            )
        if ingested.failures:
            relpath, message = ingested.failures[0]
            more = f' (and {ingested.failed - 1} more file(s))' if ingested.failed > 1 else ''
            raise SourceFileError(f'{Path(directory) / relpath}: {message}{more}; no TIFF was written')
        if ingested.mostly_outside:
            raise InvalidOptionError(
                f'{ingested.outside} of {ingested.outside + ingested.staged} file(s) fell wholly outside the '
                f'{spec.width} x {spec.height} canvas; check the pattern, coords and the canvas; no TIFF was written'
            )
        if not ingested.matched:
            raise SourceFileError(f'{directory}: no patch file to convert; no TIFF was written')
        written = finalize(unit, out, overwrite=overwrite, **finalize_options)
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return ConvertReport(ingested, written, None if temp_dir is not None else str(unit))


@contextlib.contextmanager
def _failures_not_logged():
    """Ingest logs each file it cannot stage; here the first one is raised
    (one line for the user), so those log lines would only say it twice."""

    def drop_errors(record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR

    logger = logging.getLogger('tifwriter_cli.ingest.directory')  # the ingest loop's
    logger.addFilter(drop_errors)
    try:
        yield
    finally:
        logger.removeFilter(drop_errors)
