"""Staging patch files: one file (:func:`stage_file`, what ``write-patch``
calls) or a directory of them (:func:`ingest_npy_dir`).

* :mod:`.contribution` - the contribution identity of a file and the one
  :func:`stage_file` both commands stage with;
* :mod:`.patterns` - file name patterns (``tile_{x}_{y}.npy``), matched in
  linear time;
* :mod:`.shards` - which files one of N parallel ingests takes;
* :mod:`.directory` - the ingest loop and its report.
"""

from .contribution import FILE_KEY_PREFIX, StageOutcome, file_key, stage_file
from .directory import IngestReport, ingest_npy_dir
from .patterns import DEFAULT_PATTERN, PATCH_EXTENSIONS, NamePattern, compile_pattern
from .shards import checked_shard, in_shard, parse_shard, shard_from_environment

__all__ = [
    'DEFAULT_PATTERN',
    'FILE_KEY_PREFIX',
    'PATCH_EXTENSIONS',
    'IngestReport',
    'NamePattern',
    'StageOutcome',
    'checked_shard',
    'compile_pattern',
    'file_key',
    'in_shard',
    'ingest_npy_dir',
    'parse_shard',
    'shard_from_environment',
    'stage_file',
]
