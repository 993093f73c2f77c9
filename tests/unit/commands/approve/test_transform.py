import pytest

from mlops_lab.commands.approve.transform import approval_note, approval_problem
from mlops_lab.tracking.registry import APPROVED, AWAITING_APPROVAL


def test_a_waiting_winner_may_be_approved_while_the_champion_it_beat_holds():
    assert approval_problem("3", AWAITING_APPROVAL, "2", "2") is None


@pytest.mark.parametrize(
    ("approval", "judged_against", "champion", "problem"),
    [
        (AWAITING_APPROVAL, "2", "3", "v3 is the champion already"),
        (APPROVED, "2", "4", "v3 was approved already"),
        (None, None, "2", "v3 is not waiting for approval"),
        (AWAITING_APPROVAL, "2", "4", "v3 beat v2, and the champion is now v4: judge it again"),
    ],
)
def test_anything_else_is_refused_with_why(approval, judged_against, champion, problem):
    assert problem in approval_problem("3", approval, judged_against, champion)


def test_an_approval_says_when_who_and_what_it_replaced():
    assert approval_note("2026-12-07T10:00:00+00:00", "ana@lab", "2") == (
        "approved at 2026-12-07T10:00:00+00:00 by ana@lab, replacing v2"
    )
