"""Pure functions of loop: what each step found → one decision, as a JSON document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# The decisions, as the JSON's `decision` says them.
NO_ALERT = "no alert"
TOO_LITTLE_TRAFFIC = "too little traffic to judge"
NOTHING_NEW = "nothing new to learn from"
PROMOTED = "retrained and promoted"
REFUSED = "retrained and refused"
AWAITING_APPROVAL = "retrained, waits for approval"
FAILED = "failed"
DECISIONS = (
    NO_ALERT,
    TOO_LITTLE_TRAFFIC,
    NOTHING_NEW,
    PROMOTED,
    REFUSED,
    AWAITING_APPROVAL,
    FAILED,
)


def experiment_name(started: datetime) -> str:
    """The DVC experiment a loop's retraining is kept as: named by when the loop began."""
    return started.strftime("loop-%Y%m%d-%H%M%S")


def promotion_decision(registration: dict[str, Any]) -> str:
    """The decision the promote stage's registration of the retrained model amounts to."""
    challenger = registration["challenger"]
    if challenger["promoted"]:
        return PROMOTED
    return AWAITING_APPROVAL if challenger.get("awaiting_approval") else REFUSED


def judged_scores(metrics: dict[str, float], measure: str) -> dict[str, Any]:
    """The challenger's and the champion's selection scores the gate compared, from the
    promote run's metrics: on the test part, and on its recent traffic when it was judged."""
    scores: dict[str, Any] = {
        "measure": measure,
        "test_part": {
            "challenger": metrics.get("test.challenger"),
            "champion": metrics.get("test.champion"),
        },
    }
    if "recent_traffic.challenger" in metrics:
        scores["recent_traffic"] = {
            "listings": int(metrics.get("recent_traffic.listings", 0)),
            "challenger": metrics["recent_traffic.challenger"],
            "champion": metrics["recent_traffic.champion"],
        }
    return scores


def decision_document(
    decision: str, reason: str, started: datetime, finished: datetime, **found: Any
) -> dict[str, Any]:
    """The one JSON message a loop ends with: the decision, why, when, and what each step
    found (only the steps that ran)."""
    if decision not in DECISIONS:
        raise ValueError(f"{decision!r} is not one of the loop's decisions {DECISIONS}")
    return {
        "decision": decision,
        "reason": reason,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "seconds": round((finished - started).total_seconds(), 1),
        **{step: value for step, value in found.items() if value is not None},
    }


def decision_metrics(document: dict[str, Any]) -> dict[str, float]:
    """The numbers of a decision worth a chart in MLflow: alerts, harvest, scores."""
    metrics: dict[str, float] = {}
    if "monitor" in document:
        metrics["alerts"] = len(document["monitor"]["alerts"])
    if "harvest" in document:
        metrics["labelled_listings"] = document["harvest"]["listings"]
    for part, scored in document.get("scores", {}).items():
        if isinstance(scored, dict):
            for who in ("challenger", "champion"):
                if scored.get(who) is not None:
                    metrics[f"{part}.{who}"] = scored[who]
    return metrics


def tail_text(lines: list[str], count: int = 15) -> str:
    """The last lines of a command's output, for a decision that says why it failed."""
    return "\n".join(line.rstrip() for line in lines[-count:])
