"""File name patterns match in linear time, with the submatches of the regex they replace."""

from __future__ import annotations

import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from tifwriter_cli.ingest import PATCH_EXTENSIONS, compile_pattern


def reference_regex(tokens) -> re.Pattern[str]:
    """The regular expression patterns used to compile to (the reference model)."""
    parts = []
    for number, (kind, value) in enumerate(tokens):
        if kind == 'text':
            last = number == len(tokens) - 1
            if last and value.endswith(PATCH_EXTENSIONS):
                parts.append(re.escape(value[:-4]) + r'\.np[yz]')
            else:
                parts.append(re.escape(value))
        elif kind == 'star':
            parts.append(r'[^/]*?')
        else:
            after_star = number > 0 and tokens[number - 1][0] == 'star'
            sign = r'(?<![0-9])(?<![0-9]\.)(?:(?<![A-Za-z0-9])-)?' if after_star else '-?'
            parts.append(f'(?P<{value}>{sign}[0-9]+)')
    return re.compile(''.join(parts))


def tokens_of(pattern: str):
    tokens = []
    for piece in re.findall(r'\{[xy]\}|\*+|[^{}*]+', pattern):
        if piece in ('{x}', '{y}'):
            tokens.append(('field', piece[1]))
        elif piece.startswith('*'):
            tokens.append(('star', '*'))
        else:
            tokens.append(('text', piece))
    return tokens


PATTERNS = [
    '*{x}_{y}.npy', 'tile_{x}_{y}.npy', '*_{x}_{y}*.npz', '*{x}*{y}*.npy', 'a*{x}-*{y}.npy',
    'slide/*{x}_{y}.npy', '{x}.{y}*', '*-{x}*_{y}.np*', '**{x}_*_{y}*',
]
ALPHABET = 'ab_-.0129/ynpz'


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PATTERNS), st.text(ALPHABET, max_size=18))
def test_same_matches_as_the_regex(pattern, name):
    compiled = compile_pattern(pattern)
    expected = reference_regex(tokens_of(pattern)).fullmatch(name)
    got = compiled.regex.fullmatch(name)
    assert (got is None) == (expected is None), (pattern, name)
    if got is not None:
        assert (got.group('x'), got.group('y')) == (expected.group('x'), expected.group('y'))


@given(st.sampled_from(PATTERNS), st.integers(-999, 99999), st.integers(-999, 99999), st.text('ab_-.', max_size=6))
def test_real_names_parse_like_the_regex(pattern, x, y, noise):
    name = pattern.replace('{x}', str(x)).replace('{y}', str(y)).replace('*', noise)
    expected = reference_regex(tokens_of(pattern)).fullmatch(name)
    assert compile_pattern(pattern).coordinates(name) == (
        (int(expected.group('x')), int(expected.group('y'))) if expected else None
    )


def test_five_stars_on_a_long_name_are_fast():
    # The regex took 3.4 s for ONE such name (exponential backtracking); the
    # bound below only detects a hang, speed is not measured here.
    pattern = compile_pattern('*a*b*c*d*e{x}_{y}.npy')
    names = ['abcd' * 75, 'a' * 150 + 'b' * 150, '1_2.' * 75]
    started = time.perf_counter()
    for name in names:
        assert pattern.coordinates(name) is None
    assert pattern.coordinates('abcde' * 10 + '1_2.npy') == (1, 2)
    assert time.perf_counter() - started < 10.0
