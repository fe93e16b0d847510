"""``tifwriter export-annotations MASK -o OUT.geojson|OUT.xml``: label regions as
polygons for QuPath (GeoJSON) or ASAP (XML)."""

from __future__ import annotations

import click

from ..vocab import ANNOTATION_COORDINATES, ANNOTATION_FORMATS, OBJECT_TYPES
from .options import classes_opt, overwrite_opt, show_progress


@click.command('export-annotations')
@click.argument('mask', type=click.Path(path_type=str), metavar='MASK.tif|STAGING')
@click.option(
    '-o', '--output', 'output', required=True, type=click.Path(dir_okay=False, path_type=str),
    metavar='OUT', help='Annotation file to write: *.geojson (QuPath) or *.xml (ASAP).',
)
@click.option(
    '--format', 'fmt', type=click.Choice(ANNOTATION_FORMATS), default=None,
    help='geojson: a QuPath FeatureCollection; asap-xml: ASAP annotations (holes in a '
    '"NAME hole" group). Default from the suffix of OUT.',
)
@click.option(
    '--object-type', type=click.Choice(OBJECT_TYPES), default='annotation', show_default=True,
    help='QuPath object type of the GeoJSON features (detections are lighter, not editable).',
)
@click.option(
    '--tolerance', type=float, default=0.5, show_default=True, metavar='PX',
    help='Simplification (Douglas-Peucker, topology kept) in canvas pixels; 0 keeps the exact '
    'pixel outlines.',
)
@click.option(
    '--min-area', type=float, default=0.0, show_default=True, metavar='PX2',
    help='Drop polygons, and fill holes, smaller than this many canvas pixels.',
)
@click.option(
    '--coordinates', type=click.Choice(ANNOTATION_COORDINATES), default='slide', show_default=True,
    help='slide: slide level-0 pixels (canvas px x the --like downsample), to open over the '
    'slide; canvas: the mask\'s own pixels.',
)
@click.option(
    '--skip', default='0', show_default=True, metavar='V,V,...|none',
    help='Label values not exported (0: background).',
)
@classes_opt
@click.option(
    '--level', type=click.IntRange(min=0), default=0, show_default=True,
    help='Trace this pyramid level of a TIFF (faster, coarser); coordinates stay full resolution.',
)
@overwrite_opt
@click.pass_context
def command(
    ctx: click.Context, mask: str, output: str, fmt: str | None, object_type: str,
    tolerance: float, min_area: float, coordinates: str, skip: str, classes: str | None,
    level: int, overwrite: bool,
) -> None:
    """Trace every region of the label mask MASK (a TIFF or staging file) into
    polygons, named and coloured by the class table, for review in QuPath
    (drag the .geojson onto the slide) or ASAP (File > Load annotations).

    The mask is read band by band: memory stays bounded on 100k x 100k masks.

    \b
    Example:
      tifwriter export-annotations mask.tif -o mask.geojson --min-area 50
    """
    from ..annotations import export_annotations
    from ..errors import InvalidOptionError

    skip_values: list[float] = []
    if skip.strip().lower() != 'none':
        try:
            skip_values = [float(part) for part in skip.split(',') if part.strip()]
        except ValueError:
            raise InvalidOptionError(f'--skip takes label values like 0 or 0,255 (or none), got {skip!r}') from None
    bar = None
    if show_progress(ctx):
        from tqdm import tqdm

        bar = tqdm(unit='row', desc='trace', leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        report = export_annotations(
            mask, output, format=fmt, object_type=object_type, tolerance=tolerance,
            min_area=min_area, coordinates=coordinates, skip=skip_values, classes=classes,
            level=level, overwrite=overwrite, progress=progress if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    per_class = ', '.join(f'{name} {count}' for name, count in report.polygons.items()) or 'none'
    dropped = f', {report.dropped} below --min-area dropped' if report.dropped else ''
    place = (
        f'slide pixels (1 mask px = {report.scale:g})' if report.coordinates == 'slide'
        else f'canvas pixels (1 mask px = {report.scale:g})'
    )
    click.echo(
        f'wrote {report.out}: {report.total} polygon(s) ({per_class}){dropped}, '
        f'{report.vertices} vertices, {report.format} in {place}, in {report.seconds:.1f} s'
    )
