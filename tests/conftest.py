"""Shared test set-up: make tests/ importable for fixture modules such as ``synthetic``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
