"""A cap on explanations across all of the service's workers.

An explanation of 100 listings costs about half a second of CPU. The service's workers are
separate processes, so the cap is one lock file per slot in a folder they share, held with
flock while an explanation runs: the lock goes with the process if it dies."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ExplanationSlots:
    """At most `count` explanations at once, whichever worker and thread computes them."""

    def __init__(self, directory: Path, count: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.paths = [directory / f"explanation-{slot}.lock" for slot in range(count)]

    @contextmanager
    def taken(self) -> Iterator[bool]:
        """Whether a slot was free: held for the block if it was."""
        for path in self.paths:
            handle = path.open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        yield False
