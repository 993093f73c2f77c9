"""Reading the locks that `uv pip compile` writes (requirements/*.lock), for the tests."""

from __future__ import annotations

import re
from pathlib import Path


def normalized(name: str) -> str:
    """A package name as Python packaging compares it: lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(lock: Path) -> dict[str, str]:
    """Package (normalized) → version, for every package a lock pins."""
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", lock.read_text(), flags=re.MULTILINE)
    return {normalized(name): version for name, version in found}
