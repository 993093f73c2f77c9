"""training: training table → candidates scored on both views, the winner registered (no alias)
and saved locally as the challenger that the promote stage judges."""

from __future__ import annotations

import logging
import time

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from mlops_lab.config import CandidateConfig, ConfigError, LabConfig, SelectionConfig
from mlops_lab.context import StageContext
from mlops_lab.data_prep.task import RawDataError
from mlops_lab.features import resolve_features
from mlops_lab.files import atomic_path, write_json_atomically
from mlops_lab.registry import (
    CHAMPION,
    alias_version,
    download_version,
    log_and_register,
    version_uri,
)
from mlops_lab.tracking import (
    DATA_PREP_RUN_TAG,
    PREPARED_DATA_TAG,
    find_data_prep_run,
    sha256_file,
    stage_run,
)
from mlops_lab.training.transform import (
    CandidateResult,
    Split,
    Trained,
    candidate_metrics,
    candidate_result,
    candidates_frame,
    choose_winner,
    flat_params,
    input_field_types,
    metrics_document,
    required_view,
    results_table,
    selection_score_in_cv,
    selection_score_on_test,
    split_like_notebook,
    stratified_folds,
    train_candidate,
)

log = logging.getLogger(__name__)


def find_candidate(candidates: list[CandidateConfig], name: str, setting: str) -> CandidateConfig:
    """The training candidate a command's `setting` names; ConfigError if there is none."""
    # Checked when the command runs, not in config.py: a pipeline that never runs it needs
    # no such candidate.
    candidate = next((c for c in candidates if c.name == name), None)
    if candidate is None:
        names = [c.name for c in candidates]
        raise ConfigError(f"{setting} {name!r} is not among the training candidates {names}")
    return candidate


def read_training_part(config: LabConfig, purpose: str) -> Split:
    """The notebook's split of the prepared listings, for a command run outside the pipeline."""
    prepared_path = config.data.prepared_path
    if not prepared_path.is_file():
        raise RawDataError(
            f"{prepared_path} does not exist: run `dvc repro data_prep` before {purpose}"
        )
    return split_like_notebook(
        pd.read_parquet(prepared_path),
        config.training.test_size,
        config.training.split_random_state,
    )


def log_candidate(
    candidate: CandidateConfig, result: CandidateResult, selection: SelectionConfig
) -> None:
    """Record one candidate as a child run of the training run."""
    with mlflow.start_run(run_name=candidate.name, nested=True):
        mlflow.set_tag("mlops_lab.candidate", candidate.name)
        mlflow.log_params(
            {
                "estimator": candidate.estimator,
                "decision": candidate.decision,
                "features": (
                    "routed"
                    if candidate.features is None
                    else ",".join(resolve_features(candidate.features))
                ),
                **flat_params(candidate.params),
            }
        )
        mlflow.log_metrics(
            {
                **candidate_metrics(result),
                "cv_selection_score": selection_score_in_cv(result, selection),
                "test_selection_score": selection_score_on_test(result, selection),
                "seconds": result.seconds,
            }
        )


def input_example(test_features: pd.DataFrame) -> pd.DataFrame:
    """Listings logged with the model: five with every field and the same five as callers send
    them, so every load checks the compiled path on both kinds of listing."""
    full = test_features.head(5)
    return pd.concat([full, required_view(full)], ignore_index=True)


def run(context: StageContext) -> None:
    """Score every candidate on both views, register and save the winner, write metrics."""
    config = context.config
    training = config.training
    selection = training.selection
    categories = config.data_prep.price_categories
    prepared_path = config.data.prepared_path
    listings = pd.read_parquet(prepared_path)
    prepared_sha = sha256_file(prepared_path)
    with stage_run(
        context.tracking, context.lineage, "training", tags={PREPARED_DATA_TAG: prepared_sha}
    ) as training_run:
        experiment_id = training_run.info.experiment_id
        data_prep_run = find_data_prep_run(experiment_id, prepared_sha)
        lineage_tags = {**context.lineage.tags(), PREPARED_DATA_TAG: prepared_sha}
        if data_prep_run:
            lineage_tags[DATA_PREP_RUN_TAG] = data_prep_run
        mlflow.set_tags(lineage_tags)

        split = split_like_notebook(listings, training.test_size, training.split_random_state)
        folds = stratified_folds(split.train_target, training.cv_folds, training.cv_random_state)
        log.info(
            "split %d listings: %d to train (%d-fold CV), %d to test once; every candidate is "
            "scored on the full view and on the required view (the API's required fields only)",
            len(listings),
            len(split.train_features),
            training.cv_folds,
            len(split.test_features),
        )
        mlflow.log_params(
            {
                "test_size": training.test_size,
                "split_random_state": training.split_random_state,
                "cv_folds": training.cv_folds,
                "selection_metric": selection.metric,
                **{f"selection_weight_{v}": w for v, w in selection.view_weights.items()},
                "candidates": ",".join(c.name for c in training.candidates),
                "train_rows": len(split.train_features),
                "test_rows": len(split.test_features),
            }
        )

        results: list[CandidateResult] = []
        trained: dict[str, Trained] = {}
        total = len(training.candidates)
        for position, candidate in enumerate(training.candidates, start=1):
            log.info(
                "[%d/%d] %s: %s…",
                position,
                total,
                candidate.name,
                (
                    f"assembled from {', '.join(candidate.members)}"
                    if candidate.members
                    else "cross-validating"
                ),
            )
            started = time.perf_counter()
            trained[candidate.name] = train_candidate(candidate, split, folds, trained)
            result = candidate_result(
                candidate.name, trained[candidate.name], split, folds, categories
            )
            result.seconds = time.perf_counter() - started
            log_candidate(candidate, result, selection)
            results.append(result)
            log.info(
                "[%d/%d] %s: CV selection score %.4f; test ROC AUC full %.4f, required %.4f; "
                "macro F1 full %.4f, required %.4f (%.1f s)",
                position,
                total,
                candidate.name,
                selection_score_in_cv(result, selection),
                result.views["full"].test["roc_auc_ovr"],
                result.views["required"].test["roc_auc_ovr"],
                result.views["full"].test["macro_f1"],
                result.views["required"].test["macro_f1"],
                result.seconds,
            )

        winner = choose_winner(results, selection)
        model_name = context.tracking.registered_model_name
        started = time.perf_counter()
        model_version = log_and_register(
            trained[winner.name].model,
            model_name,
            input_example(split.test_features),
            input_field_types(),
        )
        client = MlflowClient()
        for key, value in {
            **lineage_tags,
            "candidate": winner.name,
            "test_selection_score": f"{selection_score_on_test(winner, selection):.6f}",
            **{
                f"test_{view}_{name}": f"{value:.6f}"
                for view, scores in winner.views.items()
                for name, value in scores.test.items()
            },
        }.items():
            client.set_model_version_tag(model_name, model_version, key, value)
        log.info(
            "registered %s v%s (%s) in %.1f s, no alias yet: the promote stage decides",
            model_name,
            model_version,
            winner.name,
            time.perf_counter() - started,
        )
        # The local copy is the registered version itself, so explaining and serving it
        # without a tracking server runs exactly the bytes the registry holds.
        download_version(model_name, model_version, training.model_dir)

        write_json_atomically(
            training.metrics_path,
            metrics_document(results, winner, training.reference_candidate, selection),
        )
        with atomic_path(training.candidates_path) as temporary:
            candidates_frame(results, winner.name, selection).to_csv(temporary, index=False)
        write_json_atomically(
            training.challenger_path,
            {
                "model_name": model_name,
                "version": model_version,
                "model_uri": version_uri(model_name, model_version),
                "candidate": winner.name,
                "run_id": training_run.info.run_id,
                "test_selection_score": selection_score_on_test(winner, selection),
                "test": {view: scores.test for view, scores in winner.views.items()},
                # Promotion checks the champion again before it moves the alias.
                "champion_when_trained": alias_version(client, model_name, CHAMPION),
            },
        )

        mlflow.log_metrics(
            {
                f"test_{view}_{name}": value
                for view, scores in winner.views.items()
                for name, value in scores.test.items()
            }
        )
        mlflow.set_tags({"mlops_lab.winner": winner.name, "mlops_lab.version": model_version})
        mlflow.log_artifact(str(training.candidates_path))
        mlflow.log_artifact(str(training.metrics_path))

        print(results_table(results, winner.name, selection))
        print(
            f"\n{winner.name} registered as {model_name} v{model_version}; the promote stage "
            "gives it an alias once it has answered through the serving path."
        )
