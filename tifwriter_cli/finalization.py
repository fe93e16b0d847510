"""``finalize``: write the pyramidal TIFF of a staged (or in-memory) canvas.

Everything that can be checked is checked before any work starts (the
output path, every option, their combination with the canvas); the TIFF is
written to a temp file beside OUT and renamed at the end, so any failure,
Ctrl-C included, leaves nothing at OUT. The staging file is only read.

Defaults follow the canvas kind:

===========  ==========  ==========================================
kind         resampling  compression
===========  ==========  ==========================================
labels       mode        lzw
probability  mean        lzw
image        mean        jpeg (quality 90) for uint8 with 1 or 3
                         channels, else lzw
===========  ==========  ==========================================

JPEG on labels is refused unless ``force`` (lossy codecs invent labels at
class borders). Combinations that a reader cannot open (float32 or uint32
in OpenSlide, zstd in ASAP, ...) are written, with a logged warning naming
the reader.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_output, check_output_path
from .errors import InvalidOptionError
from .sources import CanvasSource
from .spec import CanvasSpec

if TYPE_CHECKING:
    from .engines import Engine, Progress

__all__ = ['FinalizeReport', 'finalize', 'default_options']

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FinalizeReport:
    """What finalize wrote."""

    out: Path
    engine: str
    #: (width, height, tile size) per level, level 0 first.
    levels: list[tuple[int, int, int]]
    compression: str
    quality: int | None
    resampling: str
    file_bytes: int
    tiles_written: int
    tiles_stored: int
    seconds: float
    warnings: list[str]
    #: What the staging snapshot held (None for in-memory sources).
    fragments: int | None = None
    patches: int | None = None
    #: Label values the class table does not name: {value: pixels}.
    unknown_labels: dict = dataclasses.field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.levels[0][0]

    @property
    def height(self) -> int:
        return self.levels[0][1]


def default_options(spec: CanvasSpec) -> tuple[str, str]:
    """(compression, resampling) chosen from the canvas kind and pixel type."""
    if spec.kind == 'labels':
        return 'lzw', 'mode'
    if spec.kind == 'probability':
        return 'lzw', 'mean'
    if spec.dtype == 'uint8' and spec.channels in (1, 3):
        return 'jpeg', 'mean'
    return 'lzw', 'mean'


def finalize(
    staging: str | os.PathLike | CanvasSource,
    out: str | os.PathLike,
    *,
    compression: str | None = None,
    quality: int = 90,
    resampling: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    force: bool = False,
    engine: str = 'native',
    flavor: str = 'wsi',
    channel_names: list[str] | tuple[str, ...] | None = None,
    argmax: bool = False,
    threshold: float | None = None,
    channel: int | None = None,
    classes: Any = None,
) -> FinalizeReport:
    """Write the pyramidal TIFF ``out`` from a staging file (path) or a source.

    ``staging`` is a staging-file path or a
    :class:`~tifwriter_cli.sources.CanvasSource` (e.g.
    :class:`~tifwriter_cli.sources.ArraySource`). ``compression`` and
    ``resampling`` default from the canvas kind (module docstring).
    ``flavor`` is ``'wsi'`` (every level in the IFD chain: ASAP, OpenSlide,
    large_image) or ``'ome'`` (an OME-TIFF, pyramid in SubIFDs: Bio-Formats,
    so QuPath, Fiji, napari; ``channel_names`` go into its OME-XML).
    ``progress(done, total)`` is called as tiles are written, ``done``
    rising to ``total`` (:data:`tifwriter_cli.engines.Progress`).
    ``argmax=True`` writes the label map of the largest channel,
    ``threshold=T`` (``channel=C``) a 0/1 mask (:mod:`tifwriter_cli.labelmaps`);
    ``classes`` names the labels written (replacing the canvas' table).
    """
    from .engines import get_engine
    from .vocab import COMPRESSIONS, RESAMPLINGS

    started = time.monotonic()
    # -- options on their own --------------------------------------------
    if compression is not None:
        compression = str(compression).lower()
        if compression not in COMPRESSIONS:
            raise InvalidOptionError(
                f'compression must be one of {", ".join(COMPRESSIONS)}, got {compression!r}'
            )
    if resampling is not None:
        resampling = str(resampling).lower()
        if resampling not in RESAMPLINGS:
            raise InvalidOptionError(
                f'resampling must be one of {", ".join(RESAMPLINGS)}, got {resampling!r}'
            )
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidOptionError(f'quality must be an integer from 1 to 100, got {quality!r}')
    if progress is not None and not callable(progress):
        raise InvalidOptionError(f'progress must be a callable progress(done, total) or None, got {progress!r}')
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidOptionError(f'workers must be a positive integer, got {workers!r}')
    from .vocab import FLAVORS

    flavor = str(flavor).lower()
    if flavor not in FLAVORS:
        raise InvalidOptionError(f'flavor must be one of {", ".join(FLAVORS)}, got {flavor!r}')
    if channel_names is not None and flavor != 'ome':
        raise InvalidOptionError("channel_names= are written with flavor='ome' only")
    staging_input = staging if isinstance(staging, (str, os.PathLike)) else None
    out_path = check_output_path(out, overwrite=overwrite, inputs=(staging_input,))
    writer_engine = get_engine(engine)
    if flavor not in writer_engine.flavors:
        raise InvalidOptionError(
            f'the {writer_engine.name} engine writes flavor {", ".join(writer_engine.flavors)}, '
            f'not {flavor}'
        )

    # -- the source ----------------------------------------------------------
    opened = None
    if isinstance(staging, (str, os.PathLike)):
        from .staging import read_staging

        staging_path = Path(staging)
        opened = source = read_staging(staging_path)
    elif isinstance(staging, CanvasSource):
        source = staging
    else:
        raise InvalidOptionError(
            'staging must be a path or a tifwriter_cli.sources.CanvasSource, '
            f'got {type(staging).__name__}'
        )
    try:
        from .labelmaps import derive_source

        source = derive_source(
            source, argmax=argmax, threshold=threshold, channel=channel, classes=classes
        )
        return _finalize_source(
            source,
            out_path,
            engine=writer_engine,
            compression=compression,
            quality=quality,
            resampling=resampling,
            workers=workers,
            overwrite=overwrite,
            progress=progress,
            force=force,
            started=started,
            flavor=flavor,
            channel_names=channel_names,
        )
    finally:
        if opened is not None:
            opened.close()


def _finalize_source(
    source: CanvasSource,
    out_path: Path,
    *,
    engine: Engine,
    compression: str | None,
    quality: int,
    resampling: str | None,
    workers: int,
    overwrite: bool,
    progress: Progress | None,
    force: bool,
    started: float,
    flavor: str = 'wsi',
    channel_names: list[str] | tuple[str, ...] | None = None,
) -> FinalizeReport:
    from . import __version__
    from .engines import WriteOptions
    from .tiff.codecs import COMPRESSION_TAGS, check_compression, photometric_for
    from .tiff.compat import plan_problems, reader_problems, reader_warnings
    from .tiff.metadata import default_channel_names, ome_description, provenance_description
    from .tiff.plan import plan_pyramid
    from .tiff.readers import flavor_advice

    spec: CanvasSpec = source.spec
    default_compression, default_resampling = default_options(spec)
    compression = compression or default_compression
    resampling = resampling or engine.default_resampling(default_resampling)
    check_compression(compression, dtype=spec.dtype, channels=spec.channels)
    if compression not in engine.compressions:
        raise InvalidOptionError(
            f'the {engine.name} engine writes compression {", ".join(engine.compressions)}, '
            f'not {compression}'
        )
    if resampling not in engine.resamplings:
        raise InvalidOptionError(
            f'the {engine.name} engine resamples with {", ".join(engine.resamplings)}, '
            f'not {resampling}'
        )
    if channel_names is not None:
        channel_names = [str(name) for name in channel_names]
        if len(channel_names) != spec.channels:
            raise InvalidOptionError(
                f'{len(channel_names)} channel name(s) given for {spec.channels} channel(s)'
            )
    description = provenance_description(
        spec,
        version=__version__,
        resampling=resampling,
        compression=compression,
        engine=engine.name,
    )
    if flavor == 'ome':
        try:
            description = ome_description(
                spec,
                provenance=description,
                channel_names=channel_names or default_channel_names(spec),
            )
        except ValueError as exc:
            raise InvalidOptionError(str(exc)) from None
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        log.warning('%s', message)

    if compression == 'jpeg' and spec.kind == 'labels':
        if not force:
            raise InvalidOptionError(
                'jpeg is lossy and would invent labels at class borders; use lzw or '
                'deflate (or force=True to write it anyway)'
            )
        warn('jpeg on labels (forced): values near class borders will be wrong')
    if resampling == 'mean' and spec.kind == 'labels':
        warn('mean resampling on labels creates values that are not labels in the lower levels')
    photometric, _ = photometric_for(spec.channels, compression)
    problems = reader_problems(
        compression_tag=COMPRESSION_TAGS[compression],
        dtype=spec.dtype,
        channels=spec.channels,
        photometric=photometric,
    )
    if flavor == 'ome':
        # An OME-TIFF is for Bio-Formats (and large_image); ASAP and
        # OpenSlide do not read it at all, whatever the pixels.
        problems = [p for p in problems if p.reader in ('bioformats', 'large_image')]
        warn('OME-TIFF flavor: ASAP and OpenSlide do not read this file (ASAP refuses its OME-XML, '
             "OpenSlide does not see its SubIFDs); flavor='wsi' is for them")
    for message in reader_warnings(problems):
        warn(message)
    advice = flavor_advice(dtype=spec.dtype, channels=spec.channels, flavor=flavor)
    if advice:
        warn(advice)

    # A staging snapshot says what it took; in-memory sources have no such facts.
    fragments, patches = source.fragment_count, source.patch_count
    if patches == 0:
        warn('nothing is staged on this canvas: the TIFF holds only the fill value '
             '(tifwriter info STAGING shows what was staged)')
    if fragments is not None:
        log.info(
            'snapshot: %d patches from %d fragments (writers may continue; patches published '
            'after this point are not included)',
            patches or 0,
            fragments,
        )

    levels = plan_pyramid(spec.width, spec.height, spec.tile_size)
    if flavor == 'wsi':
        for message in reader_warnings(
            plan_problems([(level.width, level.height, level.tile) for level in levels])
        ):
            warn(message)
    options = WriteOptions(
        spec=spec,
        levels=tuple(levels),
        compression=compression,
        quality=quality,
        resampling=resampling,
        workers=workers,
        description=description,
        software=f'tifwriter {__version__}',
        progress=progress,
        flavor=flavor,
    )
    from .labelmaps import LabelCensus, describe_unknown

    census = LabelCensus(source) if LabelCensus.applies_to(source) else None
    with atomic_output(out_path, overwrite=overwrite) as tmp:
        result = engine.write(census or source, tmp, options)
        file_bytes = tmp.stat().st_size
    unknown_labels = census.unknown() if census is not None else {}
    if unknown_labels:
        warn(describe_unknown(unknown_labels, spec.width * spec.height))
    seconds = time.monotonic() - started
    log.debug(  # (the CLI prints its own 'wrote' line: -v must not say it twice)
        'wrote %s: %d levels, %d tiles (%d stored) in %.1f s',
        out_path,
        len(result.levels),
        result.tiles_written,
        result.tiles_stored,
        seconds,
    )
    return FinalizeReport(
        out=out_path,
        engine=engine.name,
        levels=result.levels,
        compression=compression,
        quality=quality if compression == 'jpeg' else None,
        resampling=resampling,
        file_bytes=file_bytes,
        tiles_written=result.tiles_written,
        tiles_stored=result.tiles_stored,
        seconds=seconds,
        warnings=warnings,
        fragments=fragments,
        patches=patches,
        unknown_labels=unknown_labels,
    )

