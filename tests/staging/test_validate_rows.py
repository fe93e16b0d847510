"""The index-row rules of many fragments checked at once equal the
per-fragment check: the same refusal, naming the same fragment and row."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tifwriter_cli.errors import CorruptFragmentError
from tifwriter_cli.spec import CanvasSpec
from tifwriter_cli.staging.fragment import INDEX_DTYPE
from tifwriter_cli.staging.validate import REQUIRED_FIELDS, check_fragment_index, check_fragment_indexes

SPEC = CanvasSpec(width=100, height=80, dtype='uint8', kind='labels')
FIELDS = tuple(REQUIRED_FIELDS) + ('codec',)


@st.composite
def index_tables(draw: st.DrawFn) -> tuple[numpy.ndarray, int]:
    rows = draw(st.integers(0, 4))
    index = numpy.zeros(rows, INDEX_DTYPE)
    for row in range(rows):
        index['x'][row] = draw(st.integers(-2, 105))
        index['y'][row] = draw(st.integers(-2, 85))
        index['width'][row] = draw(st.integers(-1, 30))
        index['height'][row] = draw(st.integers(-1, 30))
        index['uniform'][row] = draw(st.sampled_from([0, 1, 1, 2]))
        index['codec'][row] = draw(st.sampled_from([0, 1, 1, 3]))
        index['value'][row] = draw(st.sampled_from([0.0, 3.0, 255.0, 256.0, 2.5, float('nan')]))
        index['source'][row] = draw(st.integers(-2, 3))
    return index, draw(st.integers(0, 3))


def _refusal(check, *args, **kwargs) -> str | None:  # type: ignore[no-untyped-def]
    try:
        check(*args, **kwargs)
    except CorruptFragmentError as exc:
        return str(exc)
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(index_tables(), min_size=1, max_size=6))
def test_many_at_once_equals_one_by_one(tables: list[tuple[numpy.ndarray, int]]) -> None:
    items = [(FIELDS, index, n_sources, Path(f'f{k}.h5')) for k, (index, n_sources) in enumerate(tables)]
    expected = None
    for fields, index, n_sources, path in items:
        expected = _refusal(check_fragment_index, fields, index, n_sources, None, spec=SPEC, path=path)
        if expected is not None:
            break
    assert _refusal(check_fragment_indexes, items, spec=SPEC) == expected


def test_a_table_without_a_required_column_is_refused_first() -> None:
    good = numpy.zeros(1, INDEX_DTYPE)
    good['width'] = good['height'] = 4
    items = [(FIELDS, good, 1, Path('a.h5')), (('x', 'y'), good, 1, Path('b.h5'))]
    with pytest.raises(CorruptFragmentError, match=r'b\.h5.*lacks the column'):
        check_fragment_indexes(items, spec=SPEC)
