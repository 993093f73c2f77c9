import pytest

from mlops_lab.commands.rollback.transform import RollbackError, rollback_note, rollback_target


def test_by_default_the_latest_gated_version_before_the_champion():
    assert rollback_target("7", ["2", "5", "7", "9"], None) == "5"


def test_versions_compare_as_numbers_not_text():
    assert rollback_target("10", ["2", "9", "10"], None) == "9"


def test_a_requested_version_that_passed_the_gate_is_taken_even_after_the_champion():
    assert rollback_target("3", ["1", "3", "4"], "4") == "4"


@pytest.mark.parametrize(
    ("requested", "passed", "problem"),
    [
        ("2", ["1", "3"], "v2 never passed the promotion gate"),
        ("3", ["1", "3"], "v3 is the champion already"),
        (None, ["3", "4"], "no version before the champion v3 passed"),
    ],
)
def test_no_target_is_a_clear_error(requested, passed, problem):
    with pytest.raises(RollbackError, match=problem):
        rollback_target("3", passed, requested)


def test_both_versions_are_told_who_when_and_why():
    notes = rollback_note("2026-12-07T07:00:00+00:00", "ana@lab", "drift", "4", "2")
    assert notes == {
        "4": "rolled back to v2 at 2026-12-07T07:00:00+00:00 by ana@lab: drift",
        "2": "champion again (was v4) at 2026-12-07T07:00:00+00:00 by ana@lab: drift",
    }
