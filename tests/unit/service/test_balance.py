import time

import pytest

from mlops_lab.service.balance import (
    FRESH_SECONDS,
    MARGIN,
    REPORTED_AT,
    SLOTS,
    ConnectionShares,
    fair_to_accept,
)


@pytest.mark.parametrize(
    ("mine", "siblings", "accepts"),
    [
        (0, [], True),
        (50, [], True),  # alone: every connection is this worker's
        (0, [0], True),
        (MARGIN - 1, [0], True),
        (MARGIN, [0], False),
        (MARGIN, [0, 9], False),  # the least-loaded sibling decides
        (9, [8, 30], True),
    ],
)
def test_a_worker_ahead_of_its_least_loaded_sibling_leaves_new_connections_to_it(
    mine, siblings, accepts
):
    assert fair_to_accept(mine, siblings) is accepts


def test_workers_see_each_others_connections_and_freed_rows_do_not_count():
    shares = ConnectionShares.create()
    first, second = shares.reserve(), shares.reserve()
    assert first != second
    shares.report(first, 101, 5)
    shares.report(second, 102, 1)
    assert not shares.fair_to_accept(first, 5)
    assert shares.fair_to_accept(second, 1)
    shares.release(second)
    assert shares.fair_to_accept(first, 5)
    # The freed row is handed out again.
    assert shares.reserve() == second


def test_a_silent_sibling_is_not_waited_for():
    shares = ConnectionShares.create()
    busy, silent = shares.reserve(), shares.reserve()
    shares.report(busy, 101, 8)
    shares.report(silent, 102, 0)
    assert not shares.fair_to_accept(busy, 8)
    shares.rows[silent, REPORTED_AT] = time.monotonic() - FRESH_SECONDS - 1
    assert shares.fair_to_accept(busy, 8)


def test_a_stopping_sibling_is_not_waited_for():
    shares = ConnectionShares.create()
    new, stopping = shares.reserve(), shares.reserve()
    shares.report(new, 101, 8)
    shares.report(stopping, 102, 0, accepting=False)
    assert shares.fair_to_accept(new, 8)


def test_a_full_table_leaves_the_worker_unbalanced_rather_than_failing():
    shares = ConnectionShares.create()
    for _ in range(SLOTS):
        assert shares.reserve() is not None
    assert shares.reserve() is None
