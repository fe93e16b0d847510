"""Running the CLI in-process, and assertions shared by the CLI tests."""

from __future__ import annotations

import os

from click.testing import CliRunner, Result


def invoke_cli(*args: str | os.PathLike | int | float, input: str | None = None, env=None) -> Result:
    """``tifwriter ARGS`` through Click's CliRunner, environment variables as in
    production (the ``run_cli`` fixture; usable inside hypothesis tests too)."""
    from tifwriter_cli.cli.main import cli

    return CliRunner().invoke(
        cli,
        [str(a) for a in args],
        input=input,
        env=env,
        auto_envvar_prefix='TIFWRITER',
        catch_exceptions=False,
    )


def assert_clean_failure(result, exit_code: int) -> str:
    """A failure reported as exactly one 'tifwriter: error:' line; returns that line."""
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    assert 'Traceback' not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('tifwriter: error: '), lines[0]
    return lines[0]


def assert_usage_error(result, text: str = '') -> None:
    """Click's own usage error (exit 2), mentioning ``text``."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert 'Traceback' not in result.output
    assert result.stderr.startswith('Usage: ')
    assert 'Error: ' in result.stderr and text in result.stderr, result.stderr
