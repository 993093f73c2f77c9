"""Keep-alive connections spread evenly over the service's workers.

Every worker waits on the one listening socket, and whichever wakes first takes a new
connection. Clients that open their connections together and keep them (a load generator, a
proxy's pool) can land mostly on one worker: measured with 16 connections on 2 workers, one run
in three put 15 or more on one of them, which then served at half the service's rate while the
other core idled. So each worker publishes how many connections it holds in a table shared by
all of them (memory the master maps before it forks them), and a worker that holds MARGIN more
than its least-loaded sibling leaves new connections to the others. Only siblings that take
connections count: one still loading its model, one stopping (a reload's old workers) or one
silent for FRESH_SECONDS (stuck, or gone) does not, so a connection always finds a worker.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import RawArray

import numpy as np

# Rows of the table: more than any worker count a 2-core service runs, with restarts.
SLOTS = 256
# How many connections more than its least-loaded sibling a worker may hold and still accept.
MARGIN = 2
# A sibling silent this long (its loop reports several times a second) is not waited for.
FRESH_SECONDS = 2.0
# Columns of a row.
PID, CONNECTIONS, REPORTED_AT = range(3)
# A row the master has handed to a worker it is about to fork.
RESERVED = -1.0


def fair_to_accept(mine: int, siblings: list[int]) -> bool:
    """Whether a worker holding `mine` connections takes the next one, given what its live
    siblings hold."""
    return not siblings or mine < min(siblings) + MARGIN


@dataclass(frozen=True)
class ConnectionShares:
    """The shared table: one row per worker (pid, connections held, when it last reported)."""

    # A view of shared memory: writes through it are seen by every process forked after it.
    rows: np.ndarray

    @classmethod
    def create(cls) -> ConnectionShares:
        """A new table in memory that processes forked afterwards share."""
        memory = RawArray(ctypes.c_double, SLOTS * 3)
        return cls(np.frombuffer(memory, dtype=np.float64).reshape(SLOTS, 3))

    def reserve(self) -> int | None:
        """A free row for a worker about to be forked (by the master), or None if none is."""
        rows = self.rows
        free = np.flatnonzero(rows[:, PID] == 0)
        if not len(free):
            return None
        rows[free[0]] = (RESERVED, 0, time.monotonic())
        return int(free[0])

    def release(self, slot: int) -> None:
        """Free an exited worker's row (by the master)."""
        self.rows[slot] = 0

    def report(self, slot: int, pid: int, connections: int, accepting: bool = True) -> None:
        """A worker's connections, as of now; a worker that takes no more (it is stopping)
        reports as if silent, so that no sibling waits for it."""
        self.rows[slot] = (pid, connections, time.monotonic() if accepting else -np.inf)

    def fair_to_accept(self, slot: int, connections: int) -> bool:
        """Whether the worker in `slot`, holding `connections`, takes the next connection."""
        rows = self.rows
        others = np.arange(SLOTS) != slot
        live = (rows[:, PID] > 0) & (time.monotonic() - rows[:, REPORTED_AT] < FRESH_SECONDS)
        siblings = rows[others & live, CONNECTIONS]
        return fair_to_accept(connections, [int(count) for count in siblings])
