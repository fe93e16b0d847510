"""Writer engines: who turns a canvas source into the pyramidal TIFF.

``native`` (default) is ours: a streaming cascade with parallel encoding and
our own BigTIFF writer (:mod:`.native`). ``asap`` hands level 0 to ASAP's
``multiresolutionimageinterface`` writer, which builds its own pyramid
(:mod:`.asap`); it is available only where ASAP's Python bindings are
installed.
"""

from __future__ import annotations

import importlib

from ..errors import EngineUnavailableError, InvalidOptionError
from ..vocab import ENGINES
from .base import Engine, EngineResult, WriteOptions

__all__ = ['Engine', 'EngineResult', 'WriteOptions', 'get_engine']

# Each engine is the module of its name defining ``ENGINE_CLASS`` (imported on demand).


def get_engine(name: str) -> Engine:
    """The engine called ``name``; EngineUnavailableError if it cannot run here."""
    if name not in ENGINES:
        raise InvalidOptionError(f'engine must be one of {", ".join(ENGINES)}, got {name!r}')
    module = importlib.import_module(f'{__name__}.{name}')
    engine_class = module.ENGINE_CLASS
    reason = engine_class.unavailable_reason()
    if reason:
        raise EngineUnavailableError(f'the {name} engine cannot be used: {reason}')
    return engine_class()
