"""Library messages in CLI words: the one translation of API names to flags.

The library speaks its own API (``convert='scale'``, ``recursive=True``,
``create_staging()``); the CLI shows the same messages with the flags a
command-line user types. Applied to error lines and log lines alike
(:mod:`tifwriter_cli.cli.main`).
"""

from __future__ import annotations

import re

__all__ = ['in_cli_words']

#: API phrase -> CLI phrase.
_PHRASES = (
    (re.compile(r"\bconvert='(\w+)'"), r'--convert \1'),
    (re.compile(r"\bcoords='(\w+)'"), r'--coords \1'),
    (re.compile(r"\bflavor='(\w+)'"), r'--flavor \1'),
    (re.compile(r"\blayout='(\w+)'"), r'--layout \1'),
    (re.compile(r"\bblend='(\w+)'"), r'--blend \1'),
    (re.compile(r"\bmerge='(\w+)'"), r'tifwriter init --merge \1'),
    (re.compile(r"\bengine='(\w+)'"), r'--engine \1'),
    (re.compile(r'\bforce=True'), '--force'),
    (re.compile(r'\bchannel_names='), '--channel-names'),
    (re.compile(r"\bkind='(\w+)'"), r'tifwriter init --kind \1'),
    (re.compile(r'\brecursive=True'), '--recursive'),
    (re.compile(r'\bpattern='), '--pattern '),
    (re.compile(r'\bshard=\(I, N\)'), '--shard I/N'),
    (re.compile(r'\bshard "all"'), '--shard all'),
    (re.compile(r'\bcreate_staging\(overwrite=True\)'), 'init --overwrite'),
    (re.compile(r'\bcreate_staging\(\)'), '`tifwriter init`'),
    (re.compile(r'\bunstage\(staging, fragment=(\w+)\)'), r'`tifwriter unstage STAGING --fragment \1`'),
    (re.compile(r'\boverwrite=True'), '--overwrite'),
    (re.compile(r'\bargmax=True'), '--argmax'),
    (re.compile(r'\bthreshold=(?![\w.-])'), '--threshold'),
    (re.compile(r'\bchannel=(?![\w.-])'), '--channel'),
    (re.compile(r'\bclasses=(?![\w.-])'), '--classes'),
    (re.compile(r'\bmin_area=(?![\w.-])'), '--min-area'),
    (re.compile(r'\btolerance=(?![\w.-])'), '--tolerance'),
)


def in_cli_words(message: str) -> str:
    for pattern, replacement in _PHRASES:
        message = pattern.sub(replacement, message)
    return message
