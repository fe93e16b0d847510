"""Code blocks of the documentation, for the tests that run them.

A runnable block is marked by an HTML comment on the line before its fence,
invisible in rendered markdown::

    <!-- recipe: NAME -->            a snippet run as it is (bash or python)
    <!-- recipe: NAME file=F -->     a file the recipe writes to disk as F
                                     (a job script, a Makefile, a module)

``python_blocks`` returns every ```python block of a page, in order, for
pages whose examples run as one session (docs/api.md, the README).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from tests.helpers import REPO as ROOT

DOC_FILES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]

_RECIPE = re.compile(
    r'^<!--\s*recipe:\s*(?P<name>[\w.-]+)(?:\s+file=(?P<file>[\w./-]+))?\s*-->[ \t]*\n'
    r'(?P<fence>`{3,})(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$',
    re.S | re.M,
)
_FENCE = re.compile(r'^(?P<fence>`{3,})(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$', re.S | re.M)


@dataclasses.dataclass(frozen=True)
class Snippet:
    name: str
    language: str
    body: str
    file: str | None
    source: Path
    line: int

    def write_to(self, directory: Path) -> Path:
        """Save the snippet as its ``file=`` name in ``directory``."""
        assert self.file, f'recipe {self.name} has no file= name'
        path = directory / self.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.body)
        return path


def recipes() -> dict[str, Snippet]:
    """Every marked block of the README and docs/*.md, by name (names are unique)."""
    found: dict[str, Snippet] = {}
    for path in DOC_FILES:
        text = path.read_text()
        for match in _RECIPE.finditer(text):
            name = match['name']
            assert name not in found, f'recipe {name} defined twice ({path}, {found.get(name)})'
            found[name] = Snippet(
                name=name,
                language=match['info'].strip().split()[0] if match['info'].strip() else '',
                body=match['body'],
                file=match['file'],
                source=path,
                line=text.count('\n', 0, match.start()) + 1,
            )
    return found


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line, code) of every ```python block of ``path`` that is not a marked recipe."""
    text = path.read_text()
    marked = {m.start('fence') for m in _RECIPE.finditer(text)}
    return [
        (text.count('\n', 0, m.start()) + 1, m['body'])
        for m in _FENCE.finditer(text)
        if m['info'].strip() == 'python' and m.start() not in marked
    ]
