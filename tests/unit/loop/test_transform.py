from datetime import UTC, datetime

import pytest

from mlops_lab.loop.transform import (
    AWAITING_APPROVAL,
    PROMOTED,
    REFUSED,
    decision_document,
    decision_metrics,
    experiment_name,
    judged_scores,
    promotion_decision,
    tail_text,
)

STARTED = datetime(2026, 12, 7, 3, 0, 5, tzinfo=UTC)
FINISHED = datetime(2026, 12, 7, 3, 1, 20, 500000, tzinfo=UTC)


def test_an_experiment_is_named_by_when_its_loop_began():
    assert experiment_name(STARTED) == "loop-20261207-030005"


@pytest.mark.parametrize(
    ("challenger", "decision"),
    [
        ({"promoted": True, "awaiting_approval": False}, PROMOTED),
        ({"promoted": False, "awaiting_approval": True}, AWAITING_APPROVAL),
        ({"promoted": False, "awaiting_approval": False}, REFUSED),
        # A registration written before approvals existed.
        ({"promoted": False}, REFUSED),
    ],
)
def test_the_promote_stages_registration_names_the_decision(challenger, decision):
    assert promotion_decision({"challenger": challenger}) == decision


def test_scores_hold_recent_traffic_only_when_the_gate_judged_it():
    measure = "roc_auc_ovr"
    whole = {"test.challenger": 0.86, "test.champion": 0.80}
    assert judged_scores(whole, measure) == {
        "measure": measure,
        "test_part": {"challenger": 0.86, "champion": 0.80},
    }
    recent = {
        **whole,
        "recent_traffic.listings": 366.0,
        "recent_traffic.challenger": 0.85,
        "recent_traffic.champion": 0.78,
    }
    assert judged_scores(recent, measure)["recent_traffic"] == {
        "listings": 366,
        "challenger": 0.85,
        "champion": 0.78,
    }
    # No champion to beat: the challenger's score alone.
    assert judged_scores({"test.challenger": 0.86}, measure)["test_part"]["champion"] is None


def test_a_decision_document_keeps_the_steps_that_ran_and_its_metrics_their_numbers():
    document = decision_document(
        PROMOTED,
        "v2 becomes the champion",
        STARTED,
        FINISHED,
        monitor={"alerts": ["borough drifted"]},
        harvest={"listings": 2426, "left_out": {}, "new": True},
        scores={"measure": "m", "test_part": {"challenger": 0.86, "champion": None}},
        experiment=None,
    )
    assert document["seconds"] == 75.5
    assert document["started"] == "2026-12-07T03:00:05+00:00"
    assert "experiment" not in document
    assert decision_metrics(document) == {
        "alerts": 1,
        "labelled_listings": 2426,
        "test_part.challenger": 0.86,
    }


def test_a_decision_the_loop_does_not_know_is_refused():
    with pytest.raises(ValueError, match="'promoted' is not one of the loop's decisions"):
        decision_document("promoted", "", STARTED, FINISHED)


def test_a_failure_keeps_the_last_lines_of_what_failed():
    lines = [f"line {number}\n" for number in range(30)]
    assert tail_text(lines, 2) == "line 28\nline 29"
