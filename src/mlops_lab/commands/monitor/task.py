"""monitor: a window of the prediction log → drift of each field and of the predicted
categories against the training part, quality where feedback came in, an HTML report and a
JSON summary under reports/monitoring/, the same logged to MLflow, and the alerts. Not part of
`dvc repro`: the job a scheduler runs, retraining when it raises an alert."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mlops_lab.commands.monitor.transform import (
    PREDICTED,
    Findings,
    MonitorError,
    TooFewPredictions,
    Window,
    alerts,
    answers_table,
    carries_optional,
    drift_report,
    drifts_found,
    fields_to_test,
    parse_moment,
    prediction_drift_report,
    quality,
    quality_report,
    report_html,
    sent_like,
    summary_document,
    window_of,
)
from mlops_lab.common.files import write_json_atomically, write_text_atomically
from mlops_lab.config import LabConfig, MonitoringConfig
from mlops_lab.evaluation.prepared import Split, read_split
from mlops_lab.kernel.decision import weighted_labels
from mlops_lab.kernel.features import conform_listings
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS
from mlops_lab.serving.loading import ServedModel, load_served_model, served_model_uri
from mlops_lab.serving.prediction_store import (
    latest_feedback,
    logged_losses,
    logged_versions,
    prediction_store_uri,
    read_predictions,
    store_engine,
)
from mlops_lab.tracking.runs import (
    STAGE_TAG,
    TAG_PREFIX,
    resolve_tracking,
    tracking_uri,
    use_tracking,
)

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
SUMMARY_NAME = "summary.json"


def answered(model: ServedModel, listings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The categories and probabilities the service would answer for these listings."""
    probabilities, weights = model.answer(conform_listings(listings))
    return weighted_labels(probabilities, weights, np.asarray(model.categories)), probabilities


def read_window(
    engine: Any,
    model: ServedModel,
    since: datetime | None,
    until: datetime | None,
    last: int,
    minimum: int,
    store: str,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The window's log rows of the served version, and how many predictions other versions
    made in the same time range; MonitorError when there are too few to judge."""
    try:
        versions = logged_versions(engine, since, until)
        rows = read_predictions(engine, model.name, model.version, since, until, last)
    except SQLAlchemyError as error:
        raise MonitorError(
            f"cannot read the prediction log at {store}: {str(error).splitlines()[0]}. Serve "
            "the model (make serve) and send it listings (mlops-lab replay) first"
        ) from error
    others = {
        f"{name} v{version}": count
        for (name, version), count in sorted(versions.items())
        if (name, version) != (model.name, model.version)
    }
    if len(rows) < minimum:
        elsewhere = (
            "; the log holds "
            + ", ".join(f"{count} of {key}" for key, count in others.items())
            + " (--model-uri picks the model to monitor)"
            if others
            else ""
        )
        raise TooFewPredictions(
            f"the window holds {len(rows)} predictions of {model.name} v{model.version}, and "
            f"at least {minimum} are needed (monitoring.minimum_window){elsewhere}"
        )
    return rows, others


def log_to_mlflow(
    config: LabConfig,
    environment: Mapping[str, str],
    summary: dict[str, Any],
    report_path: Path,
    summary_path: Path,
) -> str:
    """One run in the monitoring experiment, tagged with the model version: the figures as
    metrics, the report and the summary as artifacts. Returns the run id."""
    tracking = resolve_tracking(
        environment,
        Path.cwd(),
        config.tracking.embedded_store_dir,
        config.monitoring.experiment_name,
        config.tracking.registered_model_name,
    )
    use_tracking(tracking)
    model = summary["model"]
    tags = {
        STAGE_TAG: "monitor",
        TAG_PREFIX + "model_name": model["name"],
        TAG_PREFIX + "model_version": model["version"],
        TAG_PREFIX + "alert": str(bool(summary["alerts"])).lower(),
    }
    drift = summary["drift"]
    metrics = {
        "window_predictions": summary["window"]["predictions"],
        "drifted_fields": len(drift["drifted_fields"]),
        "drifted_share": drift["drifted_share"],
        "predicted_categories_drift": summary["predicted_categories"]["score"],
        "with_feedback": summary["quality"]["with_feedback"],
        "alerts": len(summary["alerts"]),
        **{f"drift.{name}": field["score"] for name, field in drift["fields"].items()},
        **{
            f"{part}_{name}": value
            for part in ("window", "test")
            for name, value in (summary["quality"][part] or {}).items()
            if value is not None
        },
    }
    with mlflow.start_run(run_name=f"monitor v{model['version']}", tags=tags) as run:
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(report_path), "monitoring")
        mlflow.log_artifact(str(summary_path), "monitoring")
    return run.info.run_id


def window_quality_section(
    window: Window,
    feedback: dict[str, str],
    tested: tuple[np.ndarray, np.ndarray, np.ndarray],
    categories: list[str],
    minimum_feedback: int,
) -> tuple[dict[str, Any] | None, tuple[str, Any] | None, int]:
    """The window's quality where feedback came in, the report section that shows it against
    the test part's (`tested`: truth, labels, probabilities), and how many answers have
    feedback; no quality and no section with too few."""
    with_feedback = np.array([key in feedback for key in window.listing_ids], dtype=bool)
    count = int(with_feedback.sum())
    if count < minimum_feedback:
        log.info(
            "quality not judged: %d of the window's predictions have feedback, %d are needed "
            "(monitoring.quality.minimum_feedback)",
            *(count, minimum_feedback),
        )
        return None, None, count
    window_answers = (
        np.array([feedback[key] for key in window.listing_ids if key in feedback]),
        window.predicted[with_feedback],
        window.probabilities[with_feedback],
        categories,
    )
    section = (
        f"Quality: the {count} answers with feedback against the test part's",
        quality_report(
            answers_table(*window_answers), answers_table(*tested, categories), categories
        ),
    )
    return quality(*window_answers), section, count


def judge(
    window: Window,
    optional_share: float,
    feedback: dict[str, str],
    split: Split,
    model: ServedModel,
    monitoring: MonitoringConfig,
) -> tuple[Findings, list[tuple[str, Any]]]:
    """What the window shows (drift of its fields and of its answers, their quality where
    feedback came in), and the titled Evidently reports that show it."""
    categories = model.categories
    # Both references are sent as the window's callers send listings (`optional_share` of
    # them with the optional fields they have): the training part, what the model learnt
    # from, for the fields; the test part, which it never saw, answered by it, for the
    # categories it answers and their quality.
    inputs = list(MODEL_INPUT_FIELDS)
    reference = sent_like(split.train_features[inputs], optional_share, monitoring.seed)
    test_labels, test_probabilities = answered(
        model, sent_like(split.test_features[inputs], optional_share, monitoring.seed)
    )
    tested_answers = (split.test_target.to_numpy(), test_labels, test_probabilities)
    tested, untested = fields_to_test(window.listings, monitoring.drift.minimum_values)
    log.info(
        "drift of %d fields against %d training listings, and of the categories answered "
        "against the test part's (Evidently)…",
        *(len(tested), len(reference)),
    )
    field_drift = drift_report(reference, window.listings, tested, monitoring.drift)
    answer_drift = prediction_drift_report(test_labels, window.predicted, monitoring.drift)
    sections = [
        (
            f"Drift of the fields: the window ({len(window.predicted)} predictions) against "
            f"the training part ({len(reference)} listings)",
            field_drift,
        ),
        (
            "Drift of the categories answered: the window against the test part's answers",
            answer_drift,
        ),
    ]
    window_quality, section, with_feedback = window_quality_section(
        window, feedback, tested_answers, categories, monitoring.quality.minimum_feedback
    )
    sections += [section] if section is not None else []
    findings = Findings(
        fields=drifts_found(field_drift.dict()),
        untested=untested,
        predictions=drifts_found(answer_drift.dict())[PREDICTED],
        window_quality=window_quality,
        test_quality=quality(*tested_answers, categories),
        with_feedback=with_feedback,
    )
    return findings, sections


def window_bounds(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """--since and --until as moments; MonitorError unless since comes before until."""
    now = datetime.now(UTC)
    start = parse_moment(since, now) if since else None
    end = parse_moment(until, now) if until else None
    if start is not None and end is not None and start >= end:
        raise MonitorError(f"--since {since} is not before --until {until}")
    return start, end


@dataclass(frozen=True)
class Logged:
    """What the prediction log holds for the window."""

    rows: list[dict[str, Any]]
    # Predictions of other model versions in the same span, left out.
    others: dict[str, int]
    window: Window
    feedback: dict[str, str]
    # Answers the log could not keep since the window began, by outcome.
    missing: dict[str, int]


def read_logged(
    store: str,
    model: ServedModel,
    bounds: tuple[datetime | None, datetime | None],
    size: int,
    monitoring: MonitoringConfig,
) -> Logged:
    """The window of the model's predictions in the log, their feedback and the losses."""
    start, end = bounds
    engine = store_engine(store)
    try:
        rows, others = read_window(
            engine,
            model,
            start,
            end,
            size,
            monitoring.minimum_window,
            make_url(store).render_as_string(hide_password=True),
        )
        window = window_of(rows, model.categories)
        feedback = latest_feedback(engine, [key for key in window.listing_ids if key])
        missing = logged_losses(engine, start or rows[0]["predicted_at"], end)
    finally:
        engine.dispose()
    log.info(
        "window: %d predictions of %s v%s, %s to %s",
        *(len(rows), model.name, model.version),
        window.predicted_at[0].isoformat(timespec="seconds"),
        window.predicted_at[-1].isoformat(timespec="seconds"),
    )
    return Logged(rows, others, window, feedback, missing)


@dataclass(frozen=True)
class MonitorOptions:
    """`mlops-lab monitor`'s options: which predictions, of which model."""

    since: str | None = None
    until: str | None = None
    last: int | None = None
    model_uri: str | None = None


def run(
    config: LabConfig, environment: Mapping[str, str], options: MonitorOptions
) -> dict[str, Any]:
    """Judge the window, write the report and the summary, log both; returns the summary,
    whose `alerts` say whether to retrain."""
    monitoring = config.monitoring
    last, model_uri = options.last, options.model_uri
    start, end = window_bounds(options.since, options.until)
    # Before MLflow is told where to track: it sets MLFLOW_TRACKING_URI in the environment.
    uri = model_uri or served_model_uri(config, environment)
    tracking = tracking_uri(environment, Path.cwd(), config.tracking.embedded_store_dir)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    split = read_split(config, "monitoring")
    model = load_served_model(
        uri, list(config.data_prep.price_categories), fall_back=False, parallel=True
    )
    store = prediction_store_uri(
        environment, Path.cwd(), monitoring.prediction_log.embedded_store_path
    )
    size = last or monitoring.window_size
    logged = read_logged(store, model, (start, end), size, monitoring)
    window = logged.window
    optional_share = float(carries_optional(window.listings).mean())
    findings, sections = judge(window, optional_share, logged.feedback, split, model, monitoring)
    found = alerts(findings, monitoring.drift.alert_share, monitoring.quality.maximum_roc_auc_drop)
    summary = summary_document(
        findings,
        found,
        model={"name": model.name, "version": model.version, "uri": model.uri},
        window={
            "predictions": len(logged.rows),
            "first": window.predicted_at[0].isoformat(timespec="seconds"),
            "last": window.predicted_at[-1].isoformat(timespec="seconds"),
            "since": None if start is None else start.isoformat(timespec="seconds"),
            "until": None if end is None else end.isoformat(timespec="seconds"),
            "most_recent": size,
            "share_with_optional_fields": round(optional_share, 6),
            "other_versions": logged.others,
            "missing": logged.missing,
        },
        reference={
            "fields": f"the notebook split's training part, {len(split.train_target)} listings",
            "answers": f"the notebook split's test part, {len(split.test_target)} listings",
            "prepared_table": str(config.data.prepared_path),
        },
        alert_share=monitoring.drift.alert_share,
    )
    report_path = monitoring.report_dir / REPORT_NAME
    summary_path = monitoring.report_dir / SUMMARY_NAME
    write_text_atomically(report_path, report_html(summary, sections))
    write_json_atomically(summary_path, summary)
    run_id = log_to_mlflow(config, environment, summary, report_path, summary_path)
    log.info("wrote %s and %s; MLflow run %s", report_path, summary_path, run_id)
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """What monitor prints when it is done: the verdict, then the figures behind it."""
    model, drift = summary["model"], summary["drift"]
    lines = [
        f"{model['name']} v{model['version']}: {summary['window']['predictions']} predictions "
        f"from {summary['window']['first']} to {summary['window']['last']}",
        f"fields drifted: {len(drift['drifted_fields'])} of {len(drift['fields'])}"
        + (f" ({', '.join(drift['drifted_fields'])})" if drift["drifted_fields"] else ""),
        "predicted categories: "
        + ("drifted" if summary["predicted_categories"]["drifted"] else "no drift")
        + f" ({summary['predicted_categories']['method']} "
        f"{summary['predicted_categories']['score']:.3f})",
    ]
    window_quality = summary["quality"]["window"]
    if window_quality is not None:
        test = summary["quality"]["test"]
        lines.append(
            f"quality on {summary['quality']['with_feedback']} predictions with feedback: "
            + ", ".join(
                f"{name} {value:.4f} (test {test[name]:.4f})"
                for name, value in window_quality.items()
                if value is not None and test.get(name) is not None
            )
        )
    missing = summary["window"]["missing"]
    if missing:
        lines.append(
            f"the log misses {sum(missing.values())} answers of this time range: "
            + ", ".join(f"{outcome} {count}" for outcome, count in sorted(missing.items()))
        )
    lines += [f"ALERT: {alert}" for alert in summary["alerts"]] or ["no alert"]
    return lines
