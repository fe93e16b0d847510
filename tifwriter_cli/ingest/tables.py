"""Reading tile-score tables: CSV, Parquet and HDF5 columns as numbers.

What :mod:`tifwriter_cli.ingest.tile_scores` stages comes from here: the x, y and
value columns of a table (one row per tile), with every bad row reported by
its place in the file (``line N`` of a CSV, header = line 1; ``row N`` of
Parquet and HDF5 columns, from 0). The format is recognised by the first
bytes, not the name: HDF5 (each column a dataset; ``NAME[i]`` is column i of
an (N, K) one; x and y default to CLAM's ``coords[0]``, ``coords[1]``),
Parquet (through pyarrow, the ``tables`` extra), else CSV (``.tsv``: tabs).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy

from ..errors import EngineUnavailableError, InvalidOptionError, SourceFileError

__all__ = ['HDF5_DEFAULT_COLUMNS', 'ScoreTable', 'read_score_table']

HDF5_MAGIC = b'\x89HDF\r\n\x1a\n'
PARQUET_MAGIC = b'PAR1'
#: x and y columns an HDF5 table defaults to (CLAM's ``coords`` dataset).
HDF5_DEFAULT_COLUMNS = ('coords[0]', 'coords[1]')
_COLUMN = re.compile(r'^(?P<name>.+?)(?:\[(?P<index>\d+)\])?$')


@dataclasses.dataclass
class ScoreTable:
    """The columns of a tile-score table: x, y (N,) and values (N, C), float64."""

    path: Path
    format: str  # 'csv', 'parquet' or 'hdf5'
    x: numpy.ndarray
    y: numpy.ndarray
    values: numpy.ndarray
    #: row index -> how to name it in a message ('line 7', 'row 5').
    describe_row: Callable[[int], str]
    #: The tile side in slide level-0 px the table records, if it does
    #: (CLAM: the ``patch_size`` attribute of ``coords``, times its ``downsample``).
    patch_size: float | None = None

    def __len__(self) -> int:
        return len(self.x)


def read_score_table(
    path: str | os.PathLike, *, x: str | None, y: str | None, values: Sequence[str]
) -> ScoreTable:
    """Read the x, y and value columns of a CSV, Parquet or HDF5 table."""
    path = Path(path)
    if not values:
        raise InvalidOptionError('give at least one value column')
    try:
        with open(path, 'rb') as fh:
            magic = fh.read(8)
    except OSError as exc:
        raise SourceFileError(f'{path}: cannot read: {exc.strerror or exc}') from None
    if magic.startswith(HDF5_MAGIC):
        fmt = 'hdf5'
        x = x or HDF5_DEFAULT_COLUMNS[0]
        y = y or HDF5_DEFAULT_COLUMNS[1]
    elif magic.startswith(PARQUET_MAGIC):
        fmt = 'parquet'
    else:
        fmt = 'csv'
    if x is None or y is None:
        raise InvalidOptionError(f'{path}: name the x and y columns (a {fmt.upper()} table has no default)')
    names = [x, y, *values]
    if fmt == 'hdf5':
        columns = _read_hdf5_columns(path, names)
        describe = _row_number
        recorded_patch_size = _clam_patch_size(path, x)
    elif fmt == 'parquet':
        columns = _read_parquet_columns(path, names)
        describe = _row_number
    else:
        columns, lines = _read_csv_columns(path, names)

        def describe(row: int, lines: list[int] = lines) -> str:
            return f'line {lines[row]}'
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        shown = ', '.join(f'{n}: {len(c)}' for n, c in zip(names, columns, strict=True))
        raise SourceFileError(f'{path}: the columns have different numbers of rows ({shown})')
    table = ScoreTable(path, fmt, columns[0], columns[1], numpy.stack(columns[2:], axis=1), describe,
                       recorded_patch_size if fmt == 'hdf5' else None)
    if not len(table):
        raise SourceFileError(f'{path}: the table has no rows')
    for name, column in (('x', table.x), ('y', table.y)):
        bad = ~numpy.isfinite(column) | (numpy.floor(column) != column)
        if bad.any():
            row = int(numpy.flatnonzero(bad)[0])
            raise SourceFileError(
                f'{path}: {describe(row)}: {name} = {float(column[row]):g} is not a whole pixel position'
            )
    return table


def _clam_patch_size(path: Path, x_column: str) -> float | None:
    """The level-0 tile side CLAM records on its coords dataset: ``patch_size``
    at ``patch_level``, times that level's ``downsample`` (none needed at level 0)."""
    import h5py

    with h5py.File(path, 'r', locking=False) as h5:
        attrs = h5[_split_column(x_column)[0]].attrs
        if 'patch_size' not in attrs:
            return None
        size = float(numpy.asarray(attrs['patch_size']).reshape(-1)[0])
        if 'downsample' in attrs:
            return size * float(numpy.asarray(attrs['downsample']).reshape(-1)[0])
        if int(numpy.asarray(attrs.get('patch_level', 0)).reshape(-1)[0]) == 0:
            return size
    return None


def _row_number(row: int) -> str:
    return f'row {row}'


def _split_column(spec: str) -> tuple[str, int | None]:
    match = _COLUMN.match(spec)
    if match is None:  # pragma: no cover - the pattern matches any non-empty text
        raise InvalidOptionError(f'bad column name {spec!r}')
    index = match.group('index')
    return match.group('name'), (int(index) if index is not None else None)


def _read_csv_columns(path: Path, names: Sequence[str]) -> tuple[list[numpy.ndarray], list[int]]:
    delimiter = '\t' if path.suffix.lower() == '.tsv' else ','
    try:
        with open(path, newline='', encoding='utf-8-sig') as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise SourceFileError(f'{path}: the table is empty (no header row)')
            header = [h.strip() for h in header]
            positions = []
            for name in names:
                if name not in header:
                    raise InvalidOptionError(
                        f'{path}: no column {name!r}; the header has {", ".join(map(repr, header[:20]))}'
                    )
                positions.append(header.index(name))
            rows: list[list[float]] = []
            lines: list[int] = []
            for record in reader:
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue  # blank line
                line = reader.line_num
                values = []
                for name, position in zip(names, positions, strict=True):
                    if position >= len(record) or not record[position].strip():
                        raise SourceFileError(f'{path}: line {line}: column {name!r} is empty')
                    text = record[position].strip()
                    try:
                        values.append(float(text))
                    except ValueError:
                        raise SourceFileError(f'{path}: line {line}: column {name!r} is {text[:40]!r}, not a number') from None
                rows.append(values)
                lines.append(line)
    except UnicodeDecodeError:
        raise SourceFileError(f'{path}: not a CSV text table (nor HDF5 or Parquet)') from None
    except csv.Error as exc:
        raise SourceFileError(f'{path}: not a readable CSV table: {exc}') from None
    except OSError as exc:
        raise SourceFileError(f'{path}: cannot read: {exc.strerror or exc}') from None
    array = numpy.array(rows, dtype=numpy.float64).reshape(len(rows), len(names))
    return [array[:, i].copy() for i in range(len(names))], lines


def _read_hdf5_columns(path: Path, names: Sequence[str]) -> list[numpy.ndarray]:
    import h5py

    try:
        h5 = h5py.File(path, 'r', locking=False)
    except OSError as exc:
        raise SourceFileError(f'{path}: not a readable HDF5 file: {exc}') from None
    with h5:
        columns = []
        for spec in names:
            name, index = _split_column(spec)
            node = h5.get(name)
            if not isinstance(node, h5py.Dataset):
                available = sorted(k for k in h5 if isinstance(h5[k], h5py.Dataset))
                raise InvalidOptionError(f'{path}: no dataset {name!r}; it has {", ".join(map(repr, available[:20]))}')
            if node.dtype.kind not in 'biuf':
                raise SourceFileError(f'{path}: dataset {name!r} is {node.dtype}, not numbers')
            data = node[()]
            if data.ndim == 2 and index is None and data.shape[1] == 1:
                index = 0
            if data.ndim == 2 and index is not None:
                if index >= data.shape[1]:
                    raise InvalidOptionError(f'{path}: dataset {name!r} has {data.shape[1]} columns, no [{index}]')
                data = data[:, index]
            elif data.ndim != 1 or index is not None:
                raise InvalidOptionError(
                    f'{path}: dataset {name!r} has shape {data.shape}: name a 1-D dataset, or NAME[i] '
                    'for column i of an (N, K) one'
                )
            columns.append(numpy.asarray(data, dtype=numpy.float64))
    return columns


def _read_parquet_columns(path: Path, names: Sequence[str]) -> list[numpy.ndarray]:
    try:
        from pyarrow import parquet
    except ImportError:
        raise EngineUnavailableError(
            f"{path}: reading Parquet needs pyarrow (pip install 'tifwriter[tables]')"
        ) from None
    try:
        schema_names = parquet.read_schema(path).names
    except Exception as exc:  # noqa: BLE001  (pyarrow raises several types for a damaged file)
        raise SourceFileError(f'{path}: not a readable Parquet file: {exc}') from None
    columns = []
    for spec in names:
        if spec not in schema_names:
            raise InvalidOptionError(f'{path}: no column {spec!r}; it has {", ".join(map(repr, schema_names[:20]))}')
    try:
        table = parquet.read_table(path, columns=list(dict.fromkeys(names)))
    except Exception as exc:  # noqa: BLE001
        raise SourceFileError(f'{path}: not a readable Parquet file: {exc}') from None
    for spec in names:
        column = table.column(spec)
        if column.null_count:
            row = int(numpy.flatnonzero(numpy.asarray(column.is_null()))[0])
            raise SourceFileError(f'{path}: row {row}: column {spec!r} is empty')
        try:
            columns.append(numpy.asarray(column.to_numpy(), dtype=numpy.float64))
        except (TypeError, ValueError):
            raise SourceFileError(f'{path}: column {spec!r} is {column.type}, not numbers') from None
    return columns
