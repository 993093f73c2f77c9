"""training: training table → candidates scored in MLflow, winner registered and saved locally."""

from __future__ import annotations

import logging
import time
from importlib.metadata import version

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from sklearn.pipeline import Pipeline

from mlops_lab.config import CandidateConfig, ConfigError, LabConfig, TrainingConfig
from mlops_lab.context import StageContext
from mlops_lab.data_prep.task import RawDataError
from mlops_lab.features import (
    SKOPS_TRUSTED_TYPES,
    build_model,
    predict_sequentially,
    resolve_features,
)
from mlops_lab.files import atomic_path, replace_directory_atomically, write_json_atomically
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
    beats_champion,
    candidates_frame,
    choose_winner,
    cross_validate_model,
    cross_validate_with_decision,
    flat_params,
    input_field_types,
    ordered_decision_weights,
    ordered_probabilities,
    per_class_metrics,
    results_table,
    score_probabilities,
    split_like_notebook,
)

log = logging.getLogger(__name__)

CHAMPION = "champion"
MODEL_PACKAGES = ("mlflow", "mlops-lab", "numpy", "pandas", "scikit-learn", "scipy", "skops")
CHALLENGER = "challenger"


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


def signature() -> ModelSignature:
    """The model's input contract (required and optional fields) and its one-label output."""
    inputs = Schema(
        [
            ColSpec(kind, name, required=required)
            for name, (kind, required) in input_field_types().items()
        ]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("string")]))


def model_requirements() -> list[str]:
    """The pinned packages a process needs to load and run the model (mlops-lab itself included)."""
    return [f"{name}=={version(name)}" for name in MODEL_PACKAGES]


def evaluate_candidate(
    candidate: CandidateConfig, split: Split, training: TrainingConfig, categories: list[str]
) -> tuple[CandidateResult, Pipeline]:
    """Cross-validate on the training part, fit on all of it, score the test part once."""
    features = resolve_features(candidate.features)
    model = build_model(candidate.estimator, features, candidate.params, candidate.decision)
    started = time.perf_counter()
    if candidate.decision == "macro_f1":
        # The decision step learns its weights from this cross-validation's held-out
        # predictions, so the folds are fitted once, not once more inside the step.
        cv_mean, cv_std, held_out = cross_validate_with_decision(
            build_model(candidate.estimator, features, candidate.params),
            split.train_features,
            split.train_target,
            training.cv_folds,
            training.cv_random_state,
        )
        model.fit(
            split.train_features,
            split.train_target,
            classifier__held_out_probabilities=held_out,
        )
    else:
        cv_mean, cv_std = cross_validate_model(
            model,
            split.train_features,
            split.train_target,
            training.cv_folds,
            training.cv_random_state,
        )
        model.fit(split.train_features, split.train_target)
    predict_sequentially(model)
    probabilities = ordered_probabilities(
        model.predict_proba(split.test_features), list(model.classes_), categories
    )
    weights = ordered_decision_weights(model, categories)
    result = CandidateResult(
        name=candidate.name,
        cv_mean=cv_mean,
        cv_std=cv_std,
        test=score_probabilities(split.test_target, probabilities, categories, weights),
        per_class=per_class_metrics(split.test_target, probabilities, categories, weights),
        seconds=time.perf_counter() - started,
    )
    return result, model


def log_candidate(candidate: CandidateConfig, result: CandidateResult) -> None:
    """Record one candidate as a child run of the training run."""
    with mlflow.start_run(run_name=candidate.name, nested=True):
        mlflow.set_tag("mlops_lab.candidate", candidate.name)
        mlflow.log_params(
            {
                "estimator": candidate.estimator,
                "decision": candidate.decision,
                "features": ",".join(resolve_features(candidate.features)),
                **flat_params(candidate.params),
            }
        )
        mlflow.log_metrics(
            {
                **{f"cv_{name}": value for name, value in result.cv_mean.items()},
                **{f"cv_{name}_std": value for name, value in result.cv_std.items()},
                **{f"test_{name}": value for name, value in result.test.items()},
                **{
                    f"test_{measure}_{category}": value
                    for category, measures in result.per_class.items()
                    for measure, value in measures.items()
                },
                "seconds": result.seconds,
            }
        )


def champion_score(
    client: MlflowClient, model_name: str, split: Split, categories: list[str], metric: str
) -> tuple[str | None, float | None]:
    """The registered champion's version and its score on this test part (None: no champion)."""
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None, None
        raise
    version = registered.aliases.get(CHAMPION)
    if version is None:
        return None, None
    # By version, not alias: the alias could move while this run scores it.
    champion = mlflow.sklearn.load_model(f"models:/{model_name}/{version}")
    probabilities = ordered_probabilities(
        champion.predict_proba(split.test_features), list(champion.classes_), categories
    )
    weights = ordered_decision_weights(champion, categories)
    score = score_probabilities(split.test_target, probabilities, categories, weights)[metric]
    return str(version), score


def register(
    context: StageContext,
    model: Pipeline,
    result: CandidateResult,
    split: Split,
    categories: list[str],
    lineage_tags: dict[str, str],
) -> dict[str, object]:
    """Log and register the winner; alias it champion only if it beats the current champion."""
    training = context.config.training
    model_name = context.tracking.registered_model_name
    client = MlflowClient()
    started = time.perf_counter()
    previous_version, previous_score = champion_score(
        client, model_name, split, categories, training.selection_metric
    )
    example = split.test_features.head(5)
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature(),
        input_example=example,
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        # Stated, not inferred: inference re-loads the model in a subprocess (~8 s).
        pip_requirements=model_requirements(),
        registered_model_name=model_name,
    )
    version = str(info.registered_model_version)
    new_score = result.test[training.selection_metric]
    alias = CHAMPION if beats_champion(new_score, previous_score) else CHALLENGER
    client.set_registered_model_alias(model_name, alias, version)
    for key, value in {
        **lineage_tags,
        "candidate": result.name,
        **{f"test_{name}": f"{value:.6f}" for name, value in result.test.items()},
    }.items():
        client.set_model_version_tag(model_name, version, key, value)
    comparison = (
        "no champion yet"
        if previous_score is None
        else f"champion v{previous_version} scores {previous_score:.4f} on this test part"
    )
    log.info(
        "registered %s v%s (%s) in %.1f s as %s: test %s %.4f; %s",
        model_name,
        version,
        result.name,
        time.perf_counter() - started,
        alias.upper(),
        training.selection_metric,
        new_score,
        comparison,
    )
    return {
        "model_name": model_name,
        "version": version,
        "alias": alias,
        "model_uri": f"models:/{model_name}/{version}",
        "run_id": mlflow.active_run().info.run_id,
        "previous_champion_version": previous_version,
        "previous_champion_score": previous_score,
    }


def run(context: StageContext) -> None:
    """Score every candidate, register and save the winner, write metrics."""
    config = context.config
    training = config.training
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
        log.info(
            "split %d listings: %d to train (%d-fold CV), %d to test once",
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
                "selection_metric": training.selection_metric,
                "candidates": ",".join(c.name for c in training.candidates),
                "train_rows": len(split.train_features),
                "test_rows": len(split.test_features),
            }
        )

        results: list[CandidateResult] = []
        models: dict[str, Pipeline] = {}
        total = len(training.candidates)
        for position, candidate in enumerate(training.candidates, start=1):
            log.info("[%d/%d] %s: cross-validating…", position, total, candidate.name)
            result, model = evaluate_candidate(candidate, split, training, categories)
            log_candidate(candidate, result)
            results.append(result)
            models[candidate.name] = model
            log.info(
                "[%d/%d] %s: CV %s %.4f ± %.4f, test ROC AUC %.4f, macro F1 %.4f (%.1f s)",
                position,
                total,
                candidate.name,
                training.selection_metric,
                result.cv_mean[training.selection_metric],
                result.cv_std[training.selection_metric],
                result.test["roc_auc_ovr"],
                result.test["macro_f1"],
                result.seconds,
            )

        winner = choose_winner(results, training.selection_metric)
        reference = next(r for r in results if r.name == training.reference_candidate)
        registration = register(
            context, models[winner.name], winner, split, categories, lineage_tags
        )

        # The local copy is the logged model itself, so serving without a tracking server
        # runs exactly the bytes the registry holds.
        replace_directory_atomically(
            training.model_dir,
            lambda path: mlflow.artifacts.download_artifacts(
                artifact_uri=registration["model_uri"], dst_path=str(path)
            ),
        )
        metrics = {
            "winner": winner.name,
            "test": winner.test,
            "cv_mean": winner.cv_mean,
            "cv_std": winner.cv_std,
            "per_class": winner.per_class,
            "reference": {"name": reference.name, "test": reference.test},
        }
        write_json_atomically(training.metrics_path, metrics)
        table = candidates_frame(results, winner.name)
        with atomic_path(training.candidates_path) as temporary:
            table.to_csv(temporary, index=False)
        write_json_atomically(training.registration_path, registration)

        mlflow.log_metrics({f"test_{name}": value for name, value in winner.test.items()})
        mlflow.log_metrics({f"reference_test_{n}": v for n, v in reference.test.items()})
        mlflow.set_tags({"mlops_lab.winner": winner.name, "mlops_lab.alias": registration["alias"]})
        mlflow.log_artifact(str(training.candidates_path))
        mlflow.log_artifact(str(training.metrics_path))

        print(results_table(results, winner.name, training.selection_metric))
        print(
            f"\n{winner.name} registered as {registration['model_name']} "
            f"v{registration['version']} → {registration['alias'].upper()}"
            + (
                ""
                if registration["alias"] == CHAMPION
                else f" (champion v{registration['previous_champion_version']} is as good)"
            )
        )
