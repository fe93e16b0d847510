"""Test helpers: numpy reference models, reader drivers, CLI checks, test inputs.

Plain functions and constants only; pytest fixtures live in tests/conftest.py.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The project root (the folder holding README.md, docs/ and tests/)."""
