"""What ``info`` says about a path: a staging file or a TIFF.

The facts come from :meth:`StagingSnapshot.summary` (a staging unit) and
:func:`tifwriter_cli.tiff.inspect.inspect_tiff` (a TIFF) and are returned as
typed results, :class:`StagingInfo` and :class:`TiffInfo`, whose
``to_dict()`` is exactly what ``tifwriter info --json`` prints (every key:
docs/info-json.md). Both text renderings live here too, so the API can
offer the same report the CLI prints.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from .errors import EXIT_FAILURE, NotAStagingFileError
from .tiff.readers import READER_TITLES

__all__ = [
    'StagingInfo',
    'TiffInfo',
    'describe_path',
    'describe_staging',
    'describe_tiff',
    'format_bytes',
    'format_staging_report',
    'format_tiff_report',
    'sniff',
]

HDF5_SIGNATURE = b'\x89HDF\r\n\x1a\n'
TIFF_SIGNATURES = (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+')


def sniff(path: str | os.PathLike) -> str:
    """'staging', 'tiff' or 'other', from the file's first bytes."""
    with open(path, 'rb') as fh:
        head = fh.read(8)
    if head == HDF5_SIGNATURE:
        return 'staging'
    if head[:4] in TIFF_SIGNATURES:
        return 'tiff'
    return 'other'


# -- typed results: what ``info --json`` prints (docs/info-json.md) ------------
class _Result:
    """A dataclass ``info --json`` prints: :meth:`to_dict` is the JSON object."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclasses.dataclass(frozen=True)
class CanvasFacts(_Result):
    width: int
    height: int
    channels: int
    dtype: str
    tile_size: int
    fill: float
    merge: str
    kind: str
    slide_downsample: float


@dataclasses.dataclass(frozen=True)
class ClassFacts(_Result):
    """One class of the class table (``init --classes``)."""

    value: int
    name: str
    #: ``#rrggbb``
    color: str


def class_facts(table: Any) -> list[ClassFacts]:
    """The class table (:class:`tifwriter_cli.classes.ClassTable` or None) as typed results."""
    return [ClassFacts(value=c.value, name=c.name, color=c.hex) for c in table] if table else []


@dataclasses.dataclass(frozen=True)
class FragmentFacts(_Result):
    count: int
    bytes: int
    unpublished_temp_files: int
    withdrawn: int
    foreign: list[str]


@dataclasses.dataclass(frozen=True)
class BoundingBox(_Result):
    x: int
    y: int
    x_end: int
    y_end: int


@dataclasses.dataclass(frozen=True)
class StagingInfo(_Result):
    """``info`` on a staging unit (from :meth:`StagingSnapshot.summary`)."""

    report: str  # 'staging'
    path: str
    format_version: int
    created: str
    tool: str
    #: Micrometres per canvas pixel [x, y], or None (the same key as TiffInfo's).
    spacing_um: list[float] | None
    canvas: CanvasFacts
    fragments: FragmentFacts
    patches: int
    uniform_patches: int
    source_files: int
    duplicate_source_rows_ignored: int
    written_pixels: int
    written_percent: float
    bbox: BoundingBox | None
    last_write: str | None
    #: The class table, by value ([] when the canvas has none).
    classes: list[ClassFacts] = dataclasses.field(default_factory=list)

    @classmethod
    def from_summary(cls, summary: dict[str, Any], classes: Any = None) -> StagingInfo:
        fields = dict(summary, report='staging', classes=class_facts(classes))
        fields['canvas'] = CanvasFacts(**summary['canvas'])
        fields['fragments'] = FragmentFacts(**summary['fragments'])
        fields['bbox'] = BoundingBox(**summary['bbox']) if summary['bbox'] else None
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class TiffLevel(_Result):
    ifd: int | str
    width: int
    height: int
    downsample: float
    tile_width: int
    tile_height: int
    compression: str
    compression_tag: int
    new_subfile_type: int
    tiles: int
    zero_byte_tiles: int
    spacing_um: list[float] | None


@dataclasses.dataclass(frozen=True)
class UntiledIfd(_Result):
    ifd: int
    width: int
    height: int
    tiled: bool


@dataclasses.dataclass(frozen=True)
class SampleRange(_Result):
    min: list[float] | None
    max: list[float] | None


@dataclasses.dataclass(frozen=True)
class TileCounts(_Result):
    referenced: int
    stored: int


@dataclasses.dataclass(frozen=True)
class ReaderVerdict(_Result):
    ok: bool
    reasons: list[str]
    notes: list[str]


@dataclasses.dataclass(frozen=True)
class TiffInfo(_Result):
    """``info`` on a TIFF (from :func:`tifwriter_cli.tiff.inspect.inspect_tiff`)."""

    report: str  # 'tiff'
    path: str
    format: str
    flavor: str
    file_bytes: int
    levels: list[TiffLevel]
    other_ifds: list[UntiledIfd]
    dtype: str | None
    channels: int
    photometric: str
    compression: str
    #: Micrometres per level-0 pixel [x, y], or None (the same key as StagingInfo's).
    spacing_um: list[float] | None
    resolution_unit: str
    description: str
    provenance: dict[str, str] | None
    sample_range: SampleRange | None
    tiles: TileCounts
    readers: dict[str, ReaderVerdict]
    accepted_by: list[str]
    ok: bool
    reasons: list[str]
    tifffile_warnings: list[str]
    #: The class table our provenance carries ([] when none).
    classes: list[ClassFacts] = dataclasses.field(default_factory=list)

    @classmethod
    def from_inspection(cls, facts: dict[str, Any]) -> TiffInfo:
        fields = dict(facts, report='tiff', tifffile_warnings=facts.get('tifffile_warnings', []))
        fields['classes'] = class_facts(_provenance_classes(facts.get('provenance')))
        fields['levels'] = [TiffLevel(**level) for level in facts['levels']]
        fields['other_ifds'] = [UntiledIfd(**ifd) for ifd in facts['other_ifds']]
        fields['sample_range'] = SampleRange(**facts['sample_range']) if facts['sample_range'] else None
        fields['tiles'] = TileCounts(**facts['tiles'])
        fields['readers'] = {name: ReaderVerdict(**v) for name, v in facts['readers'].items()}
        return cls(**fields)


def _provenance_classes(provenance: dict[str, str] | None) -> Any:
    from .classes import classes_from_provenance
    from .errors import InvalidOptionError

    try:
        return classes_from_provenance(provenance)
    except InvalidOptionError:
        return None  # a damaged field: the rest of the report still stands


def _classes_line(classes: list[dict[str, Any]]) -> list[str]:
    if not classes:
        return []
    shown = ', '.join(f'{c["value"]} {c["name"]} ({c["color"]})' for c in classes[:12])
    more = f', ... ({len(classes)} classes)' if len(classes) > 12 else ''
    return [f'classes       {shown}{more}']


# -- describing a path -------------------------------------------------------------
def describe_path(path: str | os.PathLike) -> tuple[str, StagingInfo | TiffInfo, str, int]:
    """(kind, report, text, exit code) for a staging file or a TIFF."""
    if os.path.isdir(path):
        raise NotAStagingFileError(f'{path} is a directory, not a staging file or TIFF')
    kind = sniff(path)
    if kind == 'tiff':
        report = describe_tiff(path)
        return kind, report, format_tiff_report(report), 0 if report.ok else EXIT_FAILURE
    if kind == 'other':
        raise NotAStagingFileError(f'{path} is neither a tifwriter staging file nor a TIFF')
    staging = describe_staging(path)
    return kind, staging, format_staging_report(staging), 0


def describe_staging(path: str | os.PathLike) -> StagingInfo:
    from .staging import read_staging

    with read_staging(path) as snapshot:
        return StagingInfo.from_summary(snapshot.summary(), snapshot.spec.classes)


def describe_tiff(path: str | os.PathLike) -> TiffInfo:
    from .tiff.inspect import inspect_tiff

    return TiffInfo.from_inspection(inspect_tiff(path))


def format_staging_report(report: StagingInfo) -> str:
    """The staging report as text for people."""
    r = report.to_dict()
    c = r['canvas']
    spacing = (
        f"{r['spacing_um'][0]:g} x {r['spacing_um'][1]:g} um/px"
        if r['spacing_um']
        else 'not set (the TIFF will carry no pixel size)'
    )
    bbox = r['bbox']
    lines = [
        f"staging file  {r['path']}  (format v{r['format_version']}, created {r['created']})",
        f"canvas        {c['width']} x {c['height']} px, {c['channels']} channel(s), {c['dtype']}, "
        f"kind {c['kind']}",
        f"spacing       {spacing}"
        + (
            f" (1 canvas px = {c['slide_downsample']:g} slide px)"
            if c.get('slide_downsample', 1) != 1
            else ''
        ),
        f"tile size     {c['tile_size']}    fill {c['fill']:g}    merge {c['merge']}",
        *_classes_line(r.get('classes', [])),
        f"fragments     {r['fragments']['count']} published, {format_bytes(r['fragments']['bytes'])}"
        + (
            f", {r['fragments']['unpublished_temp_files']} unpublished temp file(s) "
            '(writers running, or killed)'
            if r['fragments']['unpublished_temp_files']
            else ''
        )
        + (
            f", {r['fragments']['withdrawn']} withdrawn (unstaged or compacted; gc deletes them)"
            if r['fragments'].get('withdrawn')
            else ''
        )
        + (
            f", {len(r['fragments']['foreign'])} of another staging unit skipped (remove them)"
            if r['fragments'].get('foreign')
            else ''
        ),
        f"patches       {r['patches']} ({r['uniform_patches']} uniform), "
        f"{r['source_files']} keyed contribution(s)"
        + (
            f", {r['duplicate_source_rows_ignored']} earlier staging(s) of them replaced "
            '(re-staged or withdrawn)'
            if r.get('duplicate_source_rows_ignored')
            else ''
        ),
        f"written       {r['written_percent']:.2f} % of the canvas ({r['written_pixels']} px)",
        'bbox          '
        + (
            f"x {bbox['x']}..{bbox['x_end']}, y {bbox['y']}..{bbox['y_end']}"
            if bbox
            else 'nothing written yet'
        ),
        f"last write    {r['last_write'] or '-'}",
    ]
    return '\n'.join(lines)


def format_tiff_report(report: TiffInfo | dict[str, Any]) -> str:
    """The TIFF report (or :func:`~tifwriter_cli.tiff.inspect.inspect_tiff`'s facts) as text."""
    r = report.to_dict() if isinstance(report, TiffInfo) else report
    spacing = (
        f'{r["spacing_um"][0]:.6g} x {r["spacing_um"][1]:.6g} um/px'
        if r['spacing_um']
        else 'unknown (no resolution in cm or inch)'
    )
    lines = [
        f'TIFF          {r["path"]}  ({r["format"]}, {format_bytes(r["file_bytes"])})',
        f'pixels        {r["dtype"]}, {r["channels"]} channel(s), {r["photometric"]}, '
        f'{r["compression"]}',
        f'spacing       {spacing}',
    ]
    if r['provenance']:
        p = r['provenance']
        lines.append(
            f'written by    {p.get("tool")}: kind {p.get("kind", "?")}, merge {p.get("merge", "?")}, '
            f'resampling {p.get("resampling", "?")}'
        )
        lines.extend(_classes_line(r.get('classes', [])))
    elif r['description']:
        text = r['description'].replace('\n', ' ')
        lines.append(f'description   {text[:100]}{"..." if len(text) > 100 else ""}')
    if r['sample_range']:
        low, high = (
            ', '.join(f'{value:g}' for value in r['sample_range'][key] or []) or '?'
            for key in ('min', 'max')
        )
        lines.append(f'display range {low} .. {high} (SMin/SMaxSampleValue)')
    lines.append(f'levels        {len(r["levels"])}')
    for number, level in enumerate(r['levels']):
        lines.append(
            f'  {number}: {level["width"]:>7} x {level["height"]:<7} '
            f'downsample {level["downsample"]:<8.4g} tile {level["tile_width"]}x{level["tile_height"]}'
            f'  {level["compression"]}'
            + (f'  {level["zero_byte_tiles"]} missing tile(s)' if level['zero_byte_tiles'] else '')
        )
    for other in r['other_ifds']:
        lines.append(f'  (IFD {other["ifd"]}: {other["width"]} x {other["height"]}, not tiled)')
    lines.append(f'tiles         {r["tiles"]["referenced"]} referenced, {r["tiles"]["stored"]} stored')
    for reader, verdict in r['readers'].items():
        status = 'ok' if verdict['ok'] else 'FAILS'
        lines.append(f'{READER_TITLES[reader]:<14}{status}')
        for reason in verdict['reasons']:
            lines.append(f'    - {reason}')
        for note in verdict['notes']:
            lines.append(f'    note: {note}')
    accepted = ', '.join(r['accepted_by']) or 'no reader judged here'
    if r['ok']:
        lines.append(f'verdict       ok: a tiled pyramidal TIFF ({r["flavor"]}); opens right in {accepted}')
    else:
        lines.append(f'verdict       NOT OK (opens right in: {accepted})')
        for reason in r['reasons']:
            lines.append(f'    - {reason}')
    return '\n'.join(lines)


def format_bytes(n: float) -> str:
    """'209.8 KB': decimal units, as file managers and du -h --si show them."""
    for unit in ('B', 'KB', 'MB', 'GB', 'TB'):
        if n < 1000 or unit == 'TB':
            return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
        n /= 1000
    return f'{n} B'
