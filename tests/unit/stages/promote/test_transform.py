import pytest

from mlops_lab.stages.promote.transform import (
    awaits_approval,
    champion_change,
    measure_name,
    promotion_verdict,
    recent_traffic_verdict,
    smoke_problem,
)

MEASURE = "roc_auc_ovr weighted required 0.75, full 0.25"


@pytest.mark.parametrize(
    ("score", "champion", "champion_score", "promoted"),
    [
        (0.9, None, None, True),
        (0.9, "3", 0.8, True),
        (0.8, "3", 0.8, False),
        (0.7, "3", 0.8, False),
    ],
)
def test_only_a_strictly_better_model_takes_the_champion_alias(
    score, champion, champion_score, promoted
):
    verdict, reason = promotion_verdict("4", score, champion, champion_score, MEASURE)
    assert verdict is promoted
    assert reason.startswith("v4 becomes the champion" if promoted else "v4 is not promoted")
    if champion:
        assert f"champion v3 {champion_score:.4f}" in reason


def test_the_smoke_answers_must_come_from_this_version_and_cover_every_example():
    answered = {"model_version": "4", "predictions": [{}, {}, {}]}
    assert smoke_problem(answered, "4", 3) is None
    assert "not v5" in smoke_problem(answered, "5", 3)
    assert "answered 3 of the 4" in smoke_problem(answered, "4", 4)


def test_measure_name_gives_weights_as_shares():
    assert measure_name("roc_auc_ovr", {"required": 3, "full": 1}) == MEASURE


def test_champion_change_says_what_moved():
    assert champion_change(None, "3") == "when this run trained there was none; now it is v3"
    assert champion_change("2", "3") == "when this run trained it was v2; now it is v3"


@pytest.mark.parametrize(
    ("listings", "scores", "passes", "says"),
    [
        (99, (0.5, 0.9), True, "not judged: 99 labelled test listings, fewer than 100"),
        (100, (0.885, 0.89), True, "0.8850 against the champion's 0.8900 on 100 listings, within"),
        (100, (0.87, 0.89), False, "more than 0.01 below: refused"),
        (500, (0.95, 0.89), True, "within 0.01"),
        (500, (float("nan"), 0.89), True, "not judged: its 500 labelled test listings cannot be"),
    ],
)
def test_recent_traffic_refuses_a_challenger_only_past_the_tolerance(
    listings, scores, passes, says
):
    verdict = recent_traffic_verdict(listings, 100, scores, 0.01)
    assert verdict[0] is passes and says in verdict[1], verdict


@pytest.mark.parametrize(
    ("won", "require_approval", "champion", "waits"),
    [
        (True, True, "1", True),
        (True, False, "1", False),
        (False, True, "1", False),
        # The first champion, and a version that is already the champion, need no approval.
        (True, True, None, False),
        (True, True, "2", False),
    ],
)
def test_only_a_winner_replacing_another_champion_waits_for_approval(
    won, require_approval, champion, waits
):
    assert awaits_approval(won, require_approval, champion, "2") is waits
