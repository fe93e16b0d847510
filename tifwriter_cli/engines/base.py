"""The small interface every writer engine implements."""

from __future__ import annotations

import abc
import dataclasses
import os
from typing import Any, ClassVar

from ..spec import CanvasSpec
from ..tiff.plan import LevelPlan
from ..vocab import FLAVORS

__all__ = ['Engine', 'EngineResult', 'WriteOptions']


@dataclasses.dataclass(frozen=True)
class WriteOptions:
    """What to write, fully resolved and validated by ``finalize``."""

    spec: CanvasSpec
    #: The pyramid plan (engines that build their own pyramid use level 0 only).
    levels: tuple[LevelPlan, ...]
    compression: str
    quality: int
    resampling: str
    workers: int
    description: str
    software: str
    progress: bool = False
    #: 'wsi' (levels in the IFD chain) or 'ome' (OME-XML, levels in SubIFDs).
    flavor: str = 'wsi'


@dataclasses.dataclass
class EngineResult:
    """What an engine reports after writing."""

    levels: list[tuple[int, int, int]]  # (width, height, tile) per level written
    tiles_written: int
    tiles_stored: int
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class Engine(abc.ABC):
    """A writer engine. ``write`` produces a complete TIFF at ``out_path``."""

    name: ClassVar[str]
    #: Compressions / resampling methods this engine can produce.
    compressions: ClassVar[tuple[str, ...]]
    resamplings: ClassVar[tuple[str, ...]]
    #: TIFF flavours (vocab.FLAVORS) this engine writes.
    flavors: ClassVar[tuple[str, ...]] = FLAVORS

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this engine cannot run here, or None when it can."""
        return None

    @classmethod
    def available(cls) -> bool:
        return cls.unavailable_reason() is None

    def default_resampling(self, preferred: str) -> str:
        """The engine's closest method to the kind's preferred one."""
        return preferred

    @abc.abstractmethod
    def write(self, source: Any, out_path: str | os.PathLike, options: WriteOptions) -> EngineResult:
        """Write the whole TIFF to ``out_path`` (a temp file owned by the caller)."""
