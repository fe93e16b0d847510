"""The HDF5 staging unit: a canvas description plus published fragments.

See :mod:`.layout` for the on-disk layout and the concurrency guarantees.
"""

from .canvasfile import StagingHeader, create_staging, read_canvas
from .reader import StagingSnapshot, read_staging
from .writer import StagingWriter, open_staging

__all__ = [
    'StagingHeader',
    'StagingSnapshot',
    'StagingWriter',
    'create_staging',
    'open_staging',
    'read_canvas',
    'read_staging',
]
