"""One signal mechanism (tifwriter_cli.termination), exit codes owned by
errors.py, and library messages in API words that the CLI renders as flags."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from tifwriter_cli import errors
from tifwriter_cli.cli.wording import in_cli_words
from tifwriter_cli.termination import signal_handler, sigterm_event


def test_exit_codes_are_the_shell_conventions():
    assert errors.EXIT_INTERRUPTED == 128 + signal.SIGINT
    assert errors.EXIT_TERMINATED == 128 + signal.SIGTERM
    assert errors.IngestTerminated('x').exit_code == errors.EXIT_TERMINATED


def test_signal_handler_restores_the_previous_one():
    before = signal.getsignal(signal.SIGUSR1)
    seen = []
    with signal_handler(signal.SIGUSR1, lambda s, f: seen.append(s)) as installed:
        assert installed
        os.kill(os.getpid(), signal.SIGUSR1)
    assert seen == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) is before


def test_signal_handler_outside_the_main_thread_changes_nothing():
    before = signal.getsignal(signal.SIGUSR1)
    outcome = []

    def run():
        with signal_handler(signal.SIGUSR1, lambda s, f: None) as installed:
            outcome.append((installed, signal.getsignal(signal.SIGUSR1) is before))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert outcome == [(False, True)]


def test_sigterm_event_sets_instead_of_killing():
    with sigterm_event() as terminated:
        os.kill(os.getpid(), signal.SIGTERM)
        assert terminated.wait(5)
    assert signal.getsignal(signal.SIGTERM) is not None


@pytest.mark.parametrize(
    'api, cli',
    [
        ('x exists (use overwrite=True to replace it)', 'x exists (use --overwrite to replace it)'),
        ("or use engine='native'", 'or use --engine native'),
        ('deflate (or force=True to write it anyway)', 'deflate (or --force to write it anyway)'),
        ("flavor='wsi' is for them", '--flavor wsi is for them'),
        ('or pass shard=(I, N)', 'or pass --shard I/N'),
    ],
)
def test_cli_renders_the_api_words_as_flags(api, cli):
    assert in_cli_words(api) == cli


def test_library_messages_name_no_flags(tmp_path):
    import tifwriter_cli as tw

    staging = tmp_path / 's.h5'
    tw.create_staging(staging, tw.CanvasSpec(width=8, height=8))
    with pytest.raises(errors.OutputExistsError) as caught:
        tw.create_staging(staging, tw.CanvasSpec(width=8, height=8))
    assert '--' not in str(caught.value) and 'overwrite=True' in str(caught.value)
