"""Writes that never leave a half-written output behind."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target` that replaces it only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600); outputs get the usual umask permissions.
    temporary_path = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield temporary_path
        os.replace(temporary_path, target)
    finally:
        temporary_path.unlink(missing_ok=True)


def write_text_atomically(target: Path, text: str) -> None:
    """Write `text` to `target` all at once or not at all."""
    with atomic_path(target) as temporary:
        temporary.write_text(text)


def write_json_atomically(target: Path, payload: Any) -> None:
    """Write `payload` as indented, key-sorted JSON to `target` all at once or not at all."""
    write_text_atomically(target, json.dumps(payload, indent=2, sort_keys=True) + "\n")


@contextmanager
def locked_folder(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` itself, which leaves no lock file behind."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # which releases the lock


def replace_directory_atomically(target: Path, fill: Callable[[Path], None]) -> None:
    """Build a directory with `fill(path)` beside `target`, then swap it in; failure keeps old."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    retired = staging.with_name(staging.name + ".old")
    try:
        content = staging / "content"
        fill(content)
        # Processes that replace the same folder at once (a service's new workers keeping a
        # copy of a new champion) take turns: else one moves away what the other is moving.
        with locked_folder(target.parent):
            if target.exists():
                os.replace(target, retired)
            os.replace(content, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        # What it replaced may have been a file (a scores file, say, that a folder replaces).
        if retired.is_file():
            retired.unlink()
        shutil.rmtree(retired, ignore_errors=True)


def save_figure(figure: Figure, path: Path) -> Path:
    """Write a figure as PNG, atomically, and release its memory."""
    # Imported here: the prediction service writes no figures and installs no matplotlib.
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path
