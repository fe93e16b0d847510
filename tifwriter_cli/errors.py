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
    'EXIT_OK',
    'EXIT_FAILURE',
    'EXIT_USAGE',
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
]

#: Exit codes, documented in docs/troubleshooting.md.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TERMINATED = 143  # SIGTERM (a scheduler's time limit)


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


class CorruptFragmentError(NotAStagingFileError):
    """A published fragment is damaged (checksum mismatch, truncated file)."""


class NotOursError(OutputExistsError):
    """An output path holds a file tifwriter did not make: never replaced."""
