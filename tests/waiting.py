"""Waiting in tests: poll until a condition holds, and skip or fail what cannot run here."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

import pytest

Value = TypeVar("Value")
POLL_SECONDS = 0.1


def poll_until(
    condition: Callable[[], Value],
    seconds: float,
    what: str,
    context: Callable[[], str] = str,
) -> Value:
    """The condition's first true value within `seconds`; else the test fails, saying what it
    waited for, the last value seen, and the context (a log, say) if one is given."""
    return read_until(condition, bool, seconds, what, context)


def read_until(
    read: Callable[[], Value],
    accept: Callable[[Value], bool],
    seconds: float,
    what: str,
    context: Callable[[], str] = str,
) -> Value:
    """The first value read that `accept` takes, within `seconds`; else the test fails, saying
    what it waited for, the last value read, and the context if one is given."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"waited {seconds:g} s for {what}; last seen: {value!r:.1000}\n{context()}")
        time.sleep(POLL_SECONDS)


def skip_or_fail(reason: str) -> NoReturn:
    """Skip, saying why, on a developer's machine; fail under CI=true, where everything runs."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, and this cannot run: {reason}")
    pytest.skip(reason)
