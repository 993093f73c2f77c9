"""Pure functions of the promote stage: whether the challenger answered, and who wins."""

from __future__ import annotations

import math
from typing import Any


def smoke_problem(smoke: dict[str, Any], version: str, examples: int) -> str | None:
    """Why the smoke stage's answers do not show this version serving, or None if they do."""
    if str(smoke.get("model_version")) != version:
        return (
            f"the smoke answers are from v{smoke.get('model_version')}, not v{version}: "
            "run the prediction_app stage first (dvc repro)"
        )
    answered = len(smoke.get("predictions", []))
    if answered != examples:
        return f"v{version} answered {answered} of the {examples} example payloads"
    return None


def promotion_verdict(
    version: str,
    score: float,
    champion: str | None,
    champion_score: float | None,
    measure: str,
) -> tuple[bool, str]:
    """Whether the challenger takes the champion alias (strictly better on the same test part,
    or no champion yet), and the sentence that says why."""
    if champion is None or champion_score is None:
        return (
            True,
            f"v{version} becomes the champion: there was none (it scores {score:.4f}, {measure})",
        )
    comparison = f"v{version} scores {score:.4f} and champion v{champion} {champion_score:.4f}"
    if score > champion_score:
        return True, f"v{version} becomes the champion: {comparison} ({measure}, this test part)"
    return False, (
        f"v{version} is not promoted and becomes the challenger: {comparison} ({measure}, "
        "this test part), and only a strictly better model takes the champion alias"
    )


def awaits_approval(won: bool, require_approval: bool, champion: str | None, version: str) -> bool:
    """Whether a winning challenger waits for approval instead of taking the champion alias."""
    # The first champion needs none: without it, nothing would serve.
    return won and require_approval and champion not in (None, version)


def measure_name(metric: str, view_weights: dict[str, float]) -> str:
    """The selection score in words, e.g. 'roc_auc_ovr weighted required 0.75, full 0.25'."""
    total = sum(view_weights.values())
    parts = ", ".join(f"{view} {weight / total:g}" for view, weight in view_weights.items())
    return f"{metric} weighted {parts}"


def champion_change(when_trained: str | None, when_judged: str | None) -> str:
    """How the champion changed between training and promotion, in words."""
    then = "there was none" if when_trained is None else f"it was v{when_trained}"
    now = "there is none" if when_judged is None else f"it is v{when_judged}"
    return f"when this run trained {then}; now {now}"


def recent_traffic_verdict(
    listings: int,
    minimum: int,
    scores: tuple[float, float] | None,
    tolerance: float,
) -> tuple[bool, str]:
    """Whether the challenger may be promoted as far as the recent traffic's listings go
    (challenger's score, champion's score), and the sentence that says why."""
    if listings < minimum or scores is None:
        return True, (
            f"recent traffic not judged: {listings} labelled test listings, fewer than "
            f"{minimum}"
        )
    challenger, champion = scores
    if math.isnan(challenger) or math.isnan(champion):
        return True, (
            f"recent traffic not judged: its {listings} labelled test listings cannot be "
            "scored (they lack a category the score needs)"
        )
    comparison = f"{challenger:.4f} against the champion's {champion:.4f} on {listings} listings"
    if challenger >= champion - tolerance:
        return True, f"recent traffic: {comparison}, within {tolerance:g}"
    return False, f"recent traffic: {comparison}, more than {tolerance:g} below: refused"
