"""One error hierarchy for the whole library.

Every expected failure raises a subclass of :class:`TifwriterError`. Each
domain error also subclasses the matching builtin (``FileNotFoundError``,
``ValueError``, ...) so that library users can catch either. The CLI turns
them into a one-line message and an exit code in one place
(:mod:`tifwriter_cli.cli.main`); anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

__all__ = [
    'one_line',
    'EXIT_OK',
    'EXIT_FAILURE',
    'EXIT_USAGE',
    'EXIT_INTERRUPTED',
    'EXIT_TERMINATED',
    'TifwriterError',
    'InvalidOptionError',
    'OutputExistsError',
    'StagingNotFoundError',
    'NotAStagingFileError',
    'StagingVersionError',
    'PatchError',
    'LossyConversionError',
    'SourceFileError',
    'NotATiffError',
    'EngineUnavailableError',
    'SlideReadError',
    'CorruptFragmentError',
    'NotOursError',
    'MissingExtraError',
    'Terminated',
    'IngestTerminated',
]

def one_line(message: object) -> str:
    """A message (or an exception's) on one line: HDF5's, tifffile's and
    others' embed newlines, and every tifwriter message is one line."""
    text = ' '.join(str(message).split())
    if not text and isinstance(message, BaseException):
        return type(message).__name__
    return text


#: Exit codes, documented in docs/troubleshooting.md.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
EXIT_TERMINATED = 143  # SIGTERM (a scheduler's time limit): 128 + 15


class TifwriterError(Exception):
    """Base of every expected tifwriter failure."""

    exit_code: int = EXIT_FAILURE


class InvalidOptionError(TifwriterError, ValueError):
    """An option or argument value is out of range or inconsistent."""

    exit_code = EXIT_USAGE


class OutputExistsError(TifwriterError, FileExistsError):
    """The output exists and ``overwrite`` was not given."""


class StagingNotFoundError(TifwriterError, FileNotFoundError):
    """The staging file does not exist."""


class NotAStagingFileError(TifwriterError, ValueError):
    """The path exists but is not a tifwriter staging file."""


class StagingVersionError(TifwriterError, ValueError):
    """The staging file was written by an incompatible format version."""


class PatchError(TifwriterError, ValueError):
    """A patch does not fit the canvas (shape, channels, dtype)."""


class LossyConversionError(PatchError):
    """A patch's values cannot be stored in the canvas dtype without loss."""


class SourceFileError(TifwriterError, ValueError):
    """An input file (.npy/.npz) is unreadable or malformed."""


class NotATiffError(TifwriterError, ValueError):
    """The path is not a TIFF file."""


class EngineUnavailableError(TifwriterError, ImportError):
    """The requested writer engine cannot be used here."""


class SlideReadError(TifwriterError, ValueError):
    """A reference slide cannot be read."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (a scheduler's time limit): unwind like Ctrl-C, so
    every atomic output removes its temp file, and exit 143."""


class IngestTerminated(TifwriterError):
    """An ingest was stopped by SIGTERM (e.g. a SLURM time limit) after
    publishing what it staged (:func:`tifwriter_cli.termination.sigterm_event`)."""

    exit_code = EXIT_TERMINATED


class StagingWriteError(TifwriterError, OSError):
    """Patches could not be written to the staging unit (disk full, quota,
    I/O error). The unpublished patches of that writer are dropped, its temp
    file removed; fragments published before are intact.

    ``str()`` is the whole one-line message; ``errno`` and ``filename`` are
    those of the underlying OSError."""

    def __init__(self, message: str, *, errno: int | None = None, filename: str | None = None):
        super().__init__(message)
        self.message = message
        self.errno = errno
        self.filename = filename

    def __str__(self) -> str:
        return self.message


class StagingReplacedError(TifwriterError, ValueError):
    """The staging file was replaced (``init --overwrite``) while a writer
    had it open; the writer's patches belong to the old canvas."""


class StagingChangedError(TifwriterError, RuntimeError):
    """The staging unit changed under a reader's snapshot (a fragment was
    replaced by another file of the same name)."""


class CorruptFragmentError(NotAStagingFileError):
    """A published fragment is damaged or inconsistent (checksum
    mismatch, truncated file, index rows that do not fit its data)."""

    #: The damaged fragment's sequence number, when known (what to unstage).
    sequence: int | None = None


class NotOursError(OutputExistsError):
    """An output path holds a file tifwriter did not make: never replaced."""


class MissingExtraError(TifwriterError, ImportError):
    """A feature needs an optional extra that is not installed (the message
    names the ``pip install`` that adds it)."""
