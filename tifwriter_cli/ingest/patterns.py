"""File name patterns of ``ingest_npy_dir``: :func:`compile_pattern` owns the
syntax and its rules (see :mod:`tifwriter_cli.ingest.directory`), and the
pattern is matched in time linear in the name (:func:`compile_tokens`).

``ingest-npy-dir --pattern`` used to become a Python regular expression, whose
backtracking takes exponential time on patterns with several ``*`` (measured:
five ``*`` took 3.4 s per non-matching 300-character name, so a directory of
such names hung the ingest). Here the same pattern becomes a tiny program
(the instructions of a regex engine: one character, a choice between two
continuations in priority order, a saved position, a zero-width check) run
by a backtracking matcher that remembers every (instruction, position) it
has already seen fail. Each pair is explored at most once, so a match costs
O(len(name) x len(pattern)) steps, while the submatches are exactly those
of the regular expression it replaces (the same priorities: ``*`` as short
as possible, numbers as long as possible); ``tests/test_patterns.py``
checks the two against each other.

The token list comes from :func:`compile_pattern` below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidOptionError
from ..vocab import DEFAULT_PATTERN

__all__ = [
    'DEFAULT_PATTERN',
    'PATCH_EXTENSIONS',
    'LinearPattern',
    'NamePattern',
    'compile_pattern',
    'compile_tokens',
]

PATCH_EXTENSIONS = ('.npy', '.npz')

_TOKEN_FIELD = 'field'
_TOKEN_STAR = 'star'
_TOKEN_TEXT = 'text'

_DIGITS = frozenset('0123456789')
_WORD = frozenset('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ')

# Instructions: (TEXT, literal) | (CHAR, frozenset) | (NOT_SLASH,) | (SPLIT, preferred, other)
# | (JUMP, target) | (SAVE, slot) | (CHECK, predicate(text, pos)) | (MATCH,)
CHAR, NOT_SLASH, SPLIT, JUMP, SAVE, CHECK, MATCH, TEXT = range(8)


def _at_number_boundary(text: str, pos: int) -> bool:
    # (?<![0-9])(?<![0-9]\.): not inside '123' or after the '.' of '1.5'
    if pos >= 1 and text[pos - 1] in _DIGITS:
        return False
    return not (pos >= 2 and text[pos - 1] == '.' and text[pos - 2] in _DIGITS)


def _not_after_word(text: str, pos: int) -> bool:
    # (?<![A-Za-z0-9])
    return pos == 0 or text[pos - 1] not in _WORD


class LinearPattern:
    """A compiled pattern; :meth:`fullmatch` mirrors ``re.Pattern.fullmatch``."""

    def __init__(self, program: list[tuple], groups: dict[str, int]):
        self._program = program
        self._groups = groups  # name -> first of its two save slots

    def fullmatch(self, text: str) -> _Match | None:
        program = self._program
        n = len(text)
        saves: list[int] = [-1] * (2 * len(self._groups))
        failed: set[tuple[int, int]] = set()
        # Frames: ('go', pc, pos), ('undo', slot, old), ('failed', pc, pos).
        stack: list[tuple] = [('go', 0, 0)]
        while stack:
            frame = stack.pop()
            if frame[0] == 'undo':
                saves[frame[1]] = frame[2]
                continue
            if frame[0] == 'failed':
                failed.add((frame[1], frame[2]))
                continue
            _, pc, pos = frame
            while True:
                op = program[pc]
                kind = op[0]
                if kind == TEXT:
                    if text.startswith(op[1], pos):
                        pc, pos = pc + 1, pos + len(op[1])
                        continue
                    break
                if kind == CHAR:
                    if pos < n and text[pos] in op[1]:
                        pc, pos = pc + 1, pos + 1
                        continue
                    break
                if kind == NOT_SLASH:
                    if pos < n and text[pos] != '/':
                        pc, pos = pc + 1, pos + 1
                        continue
                    break
                if kind == SPLIT:
                    if (pc, pos) in failed:
                        break
                    # Popped only once both continuations failed.
                    stack.append(('failed', pc, pos))
                    stack.append(('go', op[2], pos))
                    pc = op[1]
                    continue
                if kind == JUMP:
                    pc = op[1]
                    continue
                if kind == SAVE:
                    stack.append(('undo', op[1], saves[op[1]]))
                    saves[op[1]] = pos
                    pc += 1
                    continue
                if kind == CHECK:
                    if op[1](text, pos):
                        pc += 1
                        continue
                    break
                # MATCH
                if pos == n:
                    return _Match(text, saves, self._groups)
                break
        return None


class _Match:
    def __init__(self, text: str, saves: list[int], groups: dict[str, int]):
        self._text = text
        self._saves = list(saves)
        self._groups = groups

    def group(self, name: str) -> str:
        slot = self._groups[name]
        return self._text[self._saves[slot] : self._saves[slot + 1]]


def compile_tokens(
    tokens: Sequence[tuple[str, str]], *, extensions: Sequence[str] = ('.npy', '.npz')
) -> LinearPattern:
    """Build the matcher for ``tokens``: ('text', s), ('star', '*'), ('field', name).

    A last text ending in one of ``extensions`` matches any of them (``.np[yz]``).
    """
    program: list[tuple] = []
    groups: dict[str, int] = {}

    def emit(*op) -> int:
        program.append(op)
        return len(program) - 1

    def emit_split() -> int:
        return emit(SPLIT, None, None)

    def patch(at: int, preferred: int, other: int) -> None:
        program[at] = (SPLIT, preferred, other)

    for number, (kind, value) in enumerate(tokens):
        if kind == 'text':
            last = number == len(tokens) - 1
            any_extension = last and value.endswith(tuple(extensions))
            # '.npy' also matches '.npz': all but the extensions' last letter is text.
            literal = value[:-1] if any_extension else value
            if literal:
                emit(TEXT, literal)
            if any_extension:
                emit(CHAR, frozenset(ext[-1] for ext in extensions))
        elif kind == 'star':
            # Lazy [^/]*?: prefer leaving the loop.
            loop = emit_split()
            emit(NOT_SLASH)
            emit(JUMP, loop)
            patch(loop, len(program), loop + 1)
        else:
            slot = 2 * len(groups)
            groups[value] = slot
            emit(SAVE, slot)
            after_star = number > 0 and tokens[number - 1][0] == 'star'
            if after_star:
                emit(CHECK, _at_number_boundary)
                # (?:(?<![A-Za-z0-9])-)?, greedy
                choice = emit_split()
                emit(CHECK, _not_after_word)
                emit(CHAR, frozenset('-'))
                patch(choice, choice + 1, len(program))
            else:
                choice = emit_split()  # -?, greedy
                emit(CHAR, frozenset('-'))
                patch(choice, choice + 1, len(program))
            # [0-9]+, greedy
            emit(CHAR, _DIGITS)
            more = emit_split()
            emit(CHAR, _DIGITS)
            emit(JUMP, more)
            patch(more, more + 1, len(program))
            emit(SAVE, slot + 1)
    emit(MATCH)
    return LinearPattern(program, groups)


@dataclasses.dataclass(frozen=True)
class NamePattern:
    """A compiled file name pattern (see the module docstring)."""

    text: str
    regex: Any  # a patterns.LinearPattern (fullmatch like re.Pattern's)
    #: True when the pattern has a '/': it matches relative paths, not names.
    matches_relpath: bool

    def coordinates(self, relpath: str) -> tuple[int, int] | None:
        """(x, y) from a '/'-separated relative path, or None if it does not match."""
        subject = relpath if self.matches_relpath else relpath.rsplit('/', 1)[-1]
        match = self.regex.fullmatch(subject)
        if match is None:
            return None
        return int(match.group('x')), int(match.group('y'))


def compile_pattern(pattern: str) -> NamePattern:
    """Parse a pattern; :class:`InvalidOptionError` says what is wrong with it."""

    def invalid(why: str) -> InvalidOptionError:
        return InvalidOptionError(f'pattern {pattern!r}: {why}')

    if not pattern:
        raise invalid('is empty')
    if pattern.endswith('/'):
        raise invalid("must end with a file name, not '/'")
    if pattern.startswith('/') or '\\' in pattern or '..' in pattern.split('/'):
        raise invalid("must be relative to the directory, with '/' separators and no '..'")
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == '{':
            end = pattern.find('}', position)
            if end < 0:
                raise invalid("'{' without a closing '}'")
            name = pattern[position + 1 : end]
            if name not in ('x', 'y'):
                raise invalid(f'unknown field {{{name}}} (the fields are {{x}} and {{y}})')
            if tokens and tokens[-1][0] == _TOKEN_FIELD:
                raise invalid(f'{{{tokens[-1][1]}}}{{{name}}}: fields must be separated by text')
            tokens.append((_TOKEN_FIELD, name))
            position = end + 1
        elif char == '}':
            raise invalid("'}' without an opening '{'")
        elif char == '*':
            if not tokens or tokens[-1][0] != _TOKEN_STAR:
                tokens.append((_TOKEN_STAR, '*'))
            position += 1
        else:
            if tokens and tokens[-1][0] == _TOKEN_TEXT:
                tokens[-1] = (_TOKEN_TEXT, tokens[-1][1] + char)
            else:
                tokens.append((_TOKEN_TEXT, char))
            position += 1
    fields = [value for kind, value in tokens if kind == _TOKEN_FIELD]
    for name in ('x', 'y'):
        if fields.count(name) == 0:
            raise invalid(f'needs a {{{name}}} field, e.g. tile_{{x}}_{{y}}.npy')
        if fields.count(name) > 1:
            raise invalid(f'{{{name}}} appears more than once')

    # Matched in linear time (a regex backtracked exponentially on several '*').
    return NamePattern(pattern, compile_tokens(tokens, extensions=PATCH_EXTENSIONS), '/' in pattern)
