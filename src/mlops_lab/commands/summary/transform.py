"""Pure functions of summary: the last run's model and the registry's verdict, as lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The scores shown for each view, as metrics/training.json names them.
SHOWN_SCORES = (("roc_auc_ovr", "ROC AUC"), ("macro_f1", "macro F1"), ("accuracy", "accuracy"))


def view_line(view: str, scores: Mapping[str, float]) -> str:
    """One view's test scores on one line."""
    shown = ", ".join(f"{label} {scores[name]:.4f}" for name, label in SHOWN_SCORES)
    return f"  {view:<9} test {shown}"


def summary_lines(training: Mapping[str, Any], registration: Mapping[str, Any]) -> list[str]:
    """The run's winning candidate and its version, its test scores on both views, and the
    version that serves (the champion) with the promote stage's reason."""
    model = registration["model_name"]
    champion = registration["champion"]["version"]
    run = registration["challenger"]
    lines = [f"this run's model: {training['winner']}, registered as {model} v{run['version']}"]
    lines += [view_line(view, training[view]["test"]) for view in ("required", "full")]
    if run["version"] == champion:
        lines.append(f"v{champion} is the champion: the service and `make serve` serve it")
    else:
        lines.append(f"the champion, which serves, is v{champion}; v{run['version']} is not")
    lines.append(f"  promote: {run['reason']}")
    lines.append("every metric: dvc metrics show; the plots: dvc plots show")
    return lines
