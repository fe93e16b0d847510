"""The names that mark tifwriter's own files, for every module that writes or
recognises them.

The staging layout (:mod:`.staging.layout`) writes them, and the output
guard (:mod:`.atomic`), which sits below staging, recognises them before it
lets ``overwrite`` replace a file: both import them from here.
"""

from __future__ import annotations

__all__ = ['FRAGMENTS_SUFFIX', 'FRAGMENT_FORMAT_NAME', 'STAGING_FORMAT_NAME']

#: The ``format`` attribute of a staging file (its fragments add '-fragment').
STAGING_FORMAT_NAME = 'tifwriter-staging'
#: NAME.h5's fragments live in the directory NAME.h5 + this suffix.
FRAGMENTS_SUFFIX = '.fragments'
#: The ``format`` attribute of a published fragment.
FRAGMENT_FORMAT_NAME = STAGING_FORMAT_NAME + '-fragment'
