"""Pure functions of monitoring: the window of logged predictions as a table, the fields it can
test, the reference sent as the window's callers send listings, Evidently's drift and quality
reports, what they found, and the alerts that call for retraining."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, MulticlassClassification, Report
from evidently.core.metric_types import render_widgets
from evidently.legacy.renderers.html_widgets import CounterData, counter, group_widget
from evidently.metrics import ValueDrift
from evidently.presets import ClassificationPreset, DataDriftPreset
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from mlops_lab.common.errors import UserError
from mlops_lab.config import DriftConfig
from mlops_lab.kernel.listing import (
    CATEGORICAL_FIELDS,
    FLAG_FIELDS,
    MODEL_INPUT_FIELDS,
    OPTIONAL_FIELDS,
)

# The column of the model's answers in both the reference and the window.
PREDICTED = "predicted_category"
# The column of the true categories (feedback, or the test part's).
ACTUAL = "price_category"
# Fields whose values are kinds, not amounts: drift is measured between their shares.
CATEGORICAL_KIND = (*CATEGORICAL_FIELDS, *FLAG_FIELDS)
DURATION = re.compile(r"^(\d+)\s*([mhd])$")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class MonitorError(UserError, ValueError):
    """The window cannot be judged: a bad option, no predictions of the model, too few."""


class TooFewPredictions(MonitorError):
    """The log holds too few predictions of the served model to judge: not yet a fault."""


def parse_moment(text: str, now: datetime) -> datetime:
    """A time given as a span back from `now` (30m, 6h, 7d) or an ISO date or time, in UTC
    unless it names its zone."""
    span = DURATION.match(text.strip())
    if span:
        return now - timedelta(**{DURATION_UNITS[span[2]]: int(span[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise MonitorError(
            f"{text!r} is no time: give a span back from now (30m, 6h, 7d) or an ISO date or "
            "time (2026-12-01, 2026-12-01T08:00, 2026-12-01T08:00+01:00)"
        ) from error
    return in_utc(moment)


def in_utc(moment: datetime) -> datetime:
    """The moment in UTC; one without a zone is taken to be UTC already (as the log keeps it)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """Logged predictions of one model version: the listings as the model took them (a field
    not sent is missing), when, for which listing id, and the answers given."""

    listings: pd.DataFrame
    listing_ids: list[str | None]
    predicted_at: list[datetime]
    predicted: np.ndarray
    probabilities: np.ndarray


def window_of(rows: list[dict[str, Any]], categories: list[str]) -> Window:
    """The window from the log's rows (oldest first)."""
    listings = pd.DataFrame([row["listing"] for row in rows], columns=list(MODEL_INPUT_FIELDS))
    for field in MODEL_INPUT_FIELDS:
        if field not in CATEGORICAL_FIELDS:
            listings[field] = pd.to_numeric(listings[field], errors="coerce").astype(float)
    probabilities = np.array(
        [[row["probabilities"][name] for name in categories] for row in rows], dtype=float
    ).reshape(len(rows), len(categories))
    return Window(
        listings,
        [row["listing_id"] for row in rows],
        [in_utc(row["predicted_at"]) for row in rows],
        np.array([row["price_category"] for row in rows], dtype=object),
        probabilities,
    )


def carries_optional(listings: pd.DataFrame) -> np.ndarray:
    """Which listings came with optional fields, not with the required ones only."""
    return listings[list(OPTIONAL_FIELDS)].notna().any(axis=1).to_numpy()


def as_sent(listings: pd.DataFrame, keep_optional: np.ndarray) -> pd.DataFrame:
    """The listings with their optional fields kept where `keep_optional`, and missing, as a
    caller who leaves them out sends them, elsewhere."""
    sent = listings.copy()
    sent.loc[~keep_optional, list(OPTIONAL_FIELDS)] = np.nan
    return sent


def sent_like(listings: pd.DataFrame, optional_share: float, seed: int) -> pd.DataFrame:
    """The listings as callers would send them who add the optional fields they have to
    `optional_share` of their requests and send the required ones alone otherwise (a seeded
    draw per listing)."""
    draws = np.random.default_rng(seed).random(len(listings))
    return as_sent(listings, draws < optional_share)


def fields_to_test(listings: pd.DataFrame, minimum_values: int) -> tuple[list[str], dict[str, int]]:
    """The fields the window sent often enough to test, and how often it sent the others."""
    counts = listings.notna().sum()
    tested = [field for field in MODEL_INPUT_FIELDS if counts[field] >= minimum_values]
    untested = {field: int(counts[field]) for field in MODEL_INPUT_FIELDS if field not in tested}
    return tested, untested


def _drift_definition(columns: list[str]) -> DataDefinition:
    """Which of the columns Evidently compares as kinds and which as amounts."""
    categorical = [name for name in columns if name in (*CATEGORICAL_KIND, PREDICTED)]
    numeric = [name for name in columns if name not in categorical]
    return DataDefinition(numerical_columns=numeric, categorical_columns=categorical)


def _evidently(report: Report, current: pd.DataFrame, reference: pd.DataFrame) -> Any:
    """The report run on the two tables, every column typed as _drift_definition says."""
    definition = _drift_definition(list(current.columns))
    with warnings.catch_warnings():
        # Evidently correlates every pair of columns, and numpy warns of each constant one (a
        # window of one borough, say): the drift measures do not use those correlations.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        return report.run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, fields: list[str], drift: DriftConfig
) -> Any:
    """Evidently's drift of each tested field, the window (`current`) against the reference."""
    preset = DataDriftPreset(
        columns=fields,
        num_method=drift.numeric_method,
        num_threshold=drift.numeric_threshold,
        cat_method=drift.categorical_method,
        cat_threshold=drift.categorical_threshold,
        drift_share=drift.alert_share,
    )
    return _evidently(Report([preset], include_tests=True), current[fields], reference[fields])


def prediction_drift_report(reference: np.ndarray, current: np.ndarray, drift: DriftConfig) -> Any:
    """Evidently's drift of the categories answered in the window (`current`) from those the
    model answers for the reference listings."""
    metric = ValueDrift(
        column=PREDICTED,
        method=drift.categorical_method,
        threshold=drift.categorical_threshold,
    )
    return _evidently(
        Report([metric], include_tests=True),
        pd.DataFrame({PREDICTED: current}),
        pd.DataFrame({PREDICTED: reference}),
    )


@dataclass(frozen=True)
class Drift:
    """How far one column of the window moved from the reference, as Evidently measured it."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


def drifts_found(snapshot: dict[str, Any]) -> dict[str, Drift]:
    """Each column's drift from a drift report's results: the score of its ValueDrift metric
    and the verdict of that metric's test."""
    verdicts = {
        test["metric_config"]["metric_id"]: test["status"]
        for test in snapshot["tests"]
        if test["metric_config"]["params"].get("type", "").endswith("ValueDrift")
    }
    found = {}
    for metric in snapshot["metrics"]:
        params = metric["config"]
        if not params["type"].endswith("ValueDrift"):
            continue
        found[params["column"]] = Drift(
            column=params["column"],
            method=params["method"],
            score=float(metric["value"]),
            threshold=float(params["threshold"]),
            drifted=verdicts[metric["id"]] == "FAIL",
        )
    return found


def quality(
    truth: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray, categories: list[str]
) -> dict[str, float | None]:
    """Accuracy and macro F1 of the categories answered, ROC AUC (one-vs-rest) and log loss of
    the probabilities given; ROC AUC is None when the truth holds a single category."""
    # roc_auc_score and log_loss read probability columns in sorted label order.
    order = np.argsort(categories)
    ordered = probabilities[:, order]
    labels = list(np.asarray(categories)[order])
    present = sorted(set(truth))
    if len(present) > 1:
        # Over the categories the truth holds: one that never occurs has no ROC curve.
        columns = [labels.index(name) for name in present]
        roc_auc: float | None = float(
            roc_auc_score(truth, ordered[:, columns], multi_class="ovr", labels=present)
            if len(present) > 2
            else roc_auc_score(truth == present[1], ordered[:, columns[1]])
        )
    else:
        roc_auc = None
    with _rounded_probabilities():
        loss = float(log_loss(truth, ordered, labels=labels))
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
        "roc_auc_ovr": roc_auc,
        "log_loss": loss,
    }


@contextmanager
def _rounded_probabilities() -> Iterator[None]:
    """Quiet about probabilities that sum to one only to 6 decimals: the API rounds them so."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The y_prob values do not sum to one", UserWarning)
        yield


def answers_table(
    truth: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray, categories: list[str]
) -> pd.DataFrame:
    """True and answered categories with each category's probability, as Evidently reads a
    classification."""
    table = pd.DataFrame(probabilities, columns=categories)
    table[ACTUAL] = truth
    table[PREDICTED] = predicted
    return table


def quality_report(current: pd.DataFrame, reference: pd.DataFrame, categories: list[str]) -> Any:
    """Evidently's classification quality of the window's answers with feedback (`current`)
    against the test part's answers (`reference`)."""
    definition = DataDefinition(
        numerical_columns=list(categories),
        categorical_columns=[ACTUAL, PREDICTED],
        classification=[
            MulticlassClassification(
                target=ACTUAL, prediction_labels=PREDICTED, prediction_probas=list(categories)
            )
        ],
    )
    with _rounded_probabilities():
        return Report([ClassificationPreset()]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )


@dataclass(frozen=True)
class Findings:
    """What one monitor run found: enough for the summary, the alerts and the exit status."""

    fields: dict[str, Drift]
    untested: dict[str, int]
    predictions: Drift
    # None when too few predictions had feedback to judge quality.
    window_quality: dict[str, float | None] | None
    test_quality: dict[str, float | None]
    with_feedback: int


def drifted_share(fields: dict[str, Drift]) -> float:
    """The share of the tested fields that drifted."""
    return sum(drift.drifted for drift in fields.values()) / max(len(fields), 1)


def alerts(findings: Findings, alert_share: float, maximum_roc_auc_drop: float) -> list[str]:
    """Why the model should be retrained, one sentence each; none when all is well."""
    found = []
    drifted = [drift.column for drift in findings.fields.values() if drift.drifted]
    if drifted and drifted_share(findings.fields) >= alert_share:
        found.append(
            f"{len(drifted)} of {len(findings.fields)} fields drifted "
            f"({drifted_share(findings.fields):.0%}, the alert is at {alert_share:.0%}): "
            + ", ".join(drifted)
        )
    if findings.predictions.drifted:
        found.append(
            "the predicted categories drifted "
            f"({findings.predictions.method} {findings.predictions.score:.3f} ≥ "
            f"{findings.predictions.threshold:g})"
        )
    window_auc = (findings.window_quality or {}).get("roc_auc_ovr")
    test_auc = findings.test_quality.get("roc_auc_ovr")
    if (
        window_auc is not None
        and test_auc is not None
        and test_auc - window_auc > maximum_roc_auc_drop
    ):
        found.append(
            f"ROC AUC fell to {window_auc:.4f} on {findings.with_feedback} predictions with "
            f"feedback, from {test_auc:.4f} on the test part (more than "
            f"{maximum_roc_auc_drop:g} below)"
        )
    return found


def _rounded(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) and math.isfinite(value) else value


def summary_document(
    findings: Findings,
    found_alerts: list[str],
    model: dict[str, str],
    window: dict[str, Any],
    reference: dict[str, Any],
    alert_share: float,
) -> dict[str, Any]:
    """The JSON summary: the model and window, each field's drift, the predicted categories'
    drift, quality where feedback came in, and the alerts."""
    return {
        "model": model,
        "window": window,
        "reference": reference,
        "drift": {
            "fields": {
                name: {key: _rounded(value) for key, value in asdict(drift).items()}
                for name, drift in findings.fields.items()
            },
            "drifted_fields": [name for name, drift in findings.fields.items() if drift.drifted],
            "drifted_share": _rounded(drifted_share(findings.fields)),
            "alert_share": alert_share,
            # Fields too few of the window's listings carried: how many did.
            "not_tested": findings.untested,
        },
        "predicted_categories": {
            key: _rounded(value) for key, value in asdict(findings.predictions).items()
        },
        "quality": {
            "with_feedback": findings.with_feedback,
            "window": (
                None
                if findings.window_quality is None
                else {key: _rounded(value) for key, value in findings.window_quality.items()}
            ),
            "test": {key: _rounded(value) for key, value in findings.test_quality.items()},
        },
        "alerts": found_alerts,
    }


def report_html(summary: dict[str, Any], sections: list[tuple[str, Any]]) -> str:
    """One self-contained page: the verdict on top, then each titled Evidently report's
    widgets, drawn by Evidently's own page, and their tests."""
    model = summary["model"]
    verdict = "; ".join(summary["alerts"]) or "no alert: no retraining needed"
    header = counter(
        title=f"{model['name']} v{model['version']}: {verdict}",
        counters=[
            CounterData("predictions in the window", str(summary["window"]["predictions"])),
            CounterData(
                "fields drifted",
                f"{len(summary['drift']['drifted_fields'])} of {len(summary['drift']['fields'])}",
            ),
            CounterData(
                "predicted categories",
                "drifted" if summary["predicted_categories"]["drifted"] else "no drift",
            ),
            CounterData("with feedback", str(summary["quality"]["with_feedback"])),
        ],
    )
    # Evidently draws one report per page; its widgets are how one page holds several.
    widgets = [header]
    widgets += [group_widget(title=title, widgets=report._widgets) for title, report in sections]
    for _, report in sections:
        widgets += report._tests_widgets
    return render_widgets(widgets)
