"""The Python examples of the documentation run as written.

docs/api.md's ```python blocks run in order as one session (later blocks use
names from earlier ones), in a fresh interpreter (as a reader would run
them: no module imported by other tests), in an empty directory holding
only the small slide ``slide.tif`` the page mentions; the README's example
likewise. The blocks assert their own outcomes (pixels read back, reports),
so running them checks what the page claims. The package docstring's
example runs as a doctest.
"""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
import textwrap

import numpy

import tifwriter_cli

from tests.helpers import doc_snippets
from tests.helpers.slides import SLIDE_H, SLIDE_W, write_pyramid

#: Executes the blocks listed in a JSON file as one session; prints a JSON
#: summary of the names they defined, after whatever the blocks printed.
SESSION = textwrap.dedent(
    """
    import json, sys
    namespace = {'__name__': '__main__'}
    for label, code in json.load(open(sys.argv[1])):
        exec(compile(code, label, 'exec'), namespace)
    print('SESSION-END')
    print(json.dumps({k: repr(v) for k, v in namespace.items() if not k.startswith('__')}))
    """
)


def run_page(path, cwd) -> tuple[str, dict[str, str]]:
    """(what the examples printed, repr of every name they defined)."""
    blocks = doc_snippets.python_blocks(path)
    assert blocks, f'no python example in {path}'
    listing = cwd / '.blocks.json'
    listing.write_text(json.dumps([[f'{path.name}, block at line {line}', code] for line, code in blocks]))
    result = subprocess.run(
        [sys.executable, '-c', SESSION, str(listing)], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    printed, _, names = result.stdout.partition('SESSION-END\n')
    return printed, json.loads(names)


def test_api_md_examples_run_in_order(tmp_path):
    image = numpy.zeros((SLIDE_H, SLIDE_W, 3), numpy.uint8)
    write_pyramid(tmp_path / 'slide.tif', image)  # 0.25 um/px
    page = doc_snippets.ROOT / 'docs' / 'api.md'

    printed, names = run_page(page, tmp_path)

    # Lines like ``print(exc)   # message`` show the message users will see.
    claims = [
        line.split('#', 1)[1].strip()
        for _, code in doc_snippets.python_blocks(page)
        for line in code.splitlines()
        if line.lstrip().startswith('print(exc)') and '#' in line
    ]
    assert len(claims) == 3
    for claim in claims:
        assert claim in printed, claim
    assert '125 93 4.0 16.0' in printed  # the overlay canvas of the 2000 x 1500 slide (floor, edge drop)

    # What the blocks left behind, checked independently of them.
    for made in ('mask.h5', 'mask.tif', 'heat.tif', 'mask.png'):
        assert (tmp_path / made).is_file(), made
    assert "out=PosixPath('mask.tif')" in names['report']
    with tifwriter_cli.read_staging(tmp_path / 'mask.h5') as snapshot:
        region = snapshot.read_region(0, 1024, 1024, 512)[:, :, 0]
        corner = snapshot.read_region(0, 0, 256, 256)[:, :, 0]
    assert (region == 2).all()  # the two ingested uint8 tiles (the float one was refused)
    assert (corner == 3).all()  # the later session's patch


def test_readme_python_example_runs(tmp_path):
    printed, _names = run_page(doc_snippets.ROOT / 'README.md', tmp_path)
    # The comment in the README states the levels it prints.
    assert printed.strip() == '[(2000, 1500, 512), (1000, 750, 512)]'
    with tifwriter_cli.read_staging(tmp_path / 'pred.h5') as snapshot:
        assert snapshot.read_region(600, 600, 1, 1)[0, 0, 0] == (1 + 1) % 3
    assert (tmp_path / 'pred.tif').is_file()


def test_package_docstring_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(tifwriter_cli, verbose=False, report=True)
    assert result.attempted >= 5
    assert result.failed == 0


def test_tw_finalize_is_the_function_even_after_its_module_was_imported(tmp_path):
    code = textwrap.dedent(
        """
        import tifwriter_cli.finalization  # as the finalize command and run_demo do
        import tifwriter_cli.ingest
        import tifwriter_cli as tw
        print(callable(tw.finalize) and callable(tw.ingest_npy_dir))
        """
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == 'True', result.stdout + result.stderr
