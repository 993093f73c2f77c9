"""training: training table → candidates scored on both views, the winner registered (no alias)
and saved locally as the challenger that the promote stage judges."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import closing
from importlib.metadata import version
from pathlib import Path

import joblib
import mlflow
from mlflow.tracking import MlflowClient

import mlops_lab
from mlops_lab.common.files import atomic_path, write_json_atomically
from mlops_lab.config import CandidateConfig, SelectionConfig, TrainingConfig
from mlops_lab.evaluation.prepared import Split, read_split
from mlops_lab.evaluation.scores import Folds, stratified_folds
from mlops_lab.kernel.listing import input_field_types
from mlops_lab.stages.context import StageContext
from mlops_lab.stages.training.transform import (
    CANDIDATE_KEY_TAG,
    PACKAGING_TAG,
    CandidateResult,
    Trained,
    candidate_keys,
    candidate_metrics,
    candidate_params,
    candidate_result,
    candidates_frame,
    challenger_document,
    choose_winner,
    input_example,
    metrics_document,
    progress_line,
    results_table,
    selection_score_in_cv,
    selection_score_on_test,
    train_candidates,
    version_tags,
)
from mlops_lab.tracking.registry import (
    CHAMPION,
    MODEL_PACKAGES,
    alias_version,
    download_version,
    log_and_register,
    version_tag,
    version_uri,
)
from mlops_lab.tracking.runs import (
    DATA_PREP_RUN_TAG,
    PREPARED_DATA_TAG,
    find_data_prep_run,
    sha256_file,
    stage_run,
)

log = logging.getLogger(__name__)

# What a candidate's results depend on besides its settings and the data: the code that decides
# what a trained model is (tests/unit/test_stage_dependencies.py keeps the list whole), and the
# libraries that fit it.
TRAINING_CODE = (
    "src/mlops_lab/evaluation/prepared.py",
    "src/mlops_lab/evaluation/scores.py",
    "src/mlops_lab/kernel/blend.py",
    "src/mlops_lab/kernel/decision.py",
    "src/mlops_lab/kernel/features.py",
    "src/mlops_lab/kernel/listing.py",
    "src/mlops_lab/kernel/modelling.py",
    "src/mlops_lab/kernel/routing.py",
    "src/mlops_lab/stages/training/transform.py",
)
TRAINING_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy")
# What a registered model's files depend on besides its fit: the code logged with it and the code
# that logs it. A winner registered by other code is registered again (its fit is reused).
PACKAGING_CODE = (
    "src/mlops_lab/kernel/contract.py",
    "src/mlops_lab/kernel/pyfunc.py",
    "src/mlops_lab/tracking/flavor.py",
    "src/mlops_lab/tracking/registry.py",
)


def code_digest(files: tuple[str, ...], libraries: tuple[str, ...]) -> str:
    """A hash of the package's files and of the libraries' versions."""
    package = Path(mlops_lab.__file__).parent
    digest = hashlib.sha256()
    for name in files:
        path = package / Path(name).relative_to("src/mlops_lab")
        digest.update(name.encode())
        digest.update(path.read_bytes())
    for library in libraries:
        digest.update(f"{library}=={version(library)}".encode())
    return digest.hexdigest()


def cached_candidate(
    cache_dir: Path, name: str, key: str
) -> tuple[Trained, CandidateResult] | None:
    """A candidate trained earlier under the same key, or None."""
    path = cache_dir / name / f"{key}.joblib"
    return joblib.load(path) if path.is_file() else None


def cache_candidate(
    cache_dir: Path, name: str, key: str, trained: Trained, result: CandidateResult
) -> None:
    """Keep a candidate under its key, in place of any it was trained under before."""
    folder = cache_dir / name
    with atomic_path(folder / f"{key}.joblib") as temporary:
        joblib.dump((trained, result), temporary)
    for earlier in folder.glob("*.joblib"):
        if earlier.stem != key:
            earlier.unlink()


def registered_challenger(
    client: MlflowClient,
    challenger_path: Path,
    model_dir: Path,
    model_name: str,
    key: str,
    packaging: str,
) -> str | None:
    """The version registered earlier for this very winner (same key), packaged as now, if it
    is still in the registry and its files are still here: registering it again would change
    nothing."""
    if not (challenger_path.is_file() and (model_dir / "MLmodel").is_file()):
        return None
    earlier = json.loads(challenger_path.read_text())
    if earlier.get("candidate_key") != key or earlier.get("model_name") != model_name:
        return None
    if version_tag(client, model_name, earlier["version"], CANDIDATE_KEY_TAG) != key:
        return None
    if version_tag(client, model_name, earlier["version"], PACKAGING_TAG) != packaging:
        return None
    return str(earlier["version"])


def log_candidate(
    candidate: CandidateConfig, result: CandidateResult, selection: SelectionConfig, reused: bool
) -> None:
    """Record one candidate as a child run of the training run."""
    with mlflow.start_run(run_name=candidate.name, nested=True):
        mlflow.set_tags({"mlops_lab.candidate": candidate.name, "mlops_lab.reused": str(reused)})
        mlflow.log_params(candidate_params(candidate))
        mlflow.log_metrics(
            {
                **candidate_metrics(result),
                "cv_selection_score": selection_score_in_cv(result, selection),
                "test_selection_score": selection_score_on_test(result, selection),
                "seconds": result.seconds,
            }
        )


def cached_candidates(
    training: TrainingConfig, keys: dict[str, str]
) -> dict[str, tuple[Trained, CandidateResult]]:
    """The candidates trained earlier under their present keys, by name."""
    cached = {}
    for candidate in training.candidates:
        earlier = cached_candidate(
            training.candidate_cache_dir, candidate.name, keys[candidate.name]
        )
        if earlier is not None:
            cached[candidate.name] = earlier
    return cached


def say_what_is_trained(training: TrainingConfig, to_train: list[CandidateConfig]) -> None:
    """Log which candidates are trained, and in how many processes."""
    if not to_train:
        return
    processes = (
        "one process per core"
        if training.fit_processes == -1
        else f"{training.fit_processes} processes"
    )
    log.info(
        "training %d of %d candidates, their fits side by side in %s: %s",
        len(to_train),
        len(training.candidates),
        processes,
        ", ".join(c.name for c in to_train),
    )


def trained_candidates(
    training: TrainingConfig,
    keys: dict[str, str],
    split: Split,
    folds: Folds,
    categories: list[str],
) -> tuple[list[CandidateResult], dict[str, Trained]]:
    """Every candidate reused from the cache under its key or trained and cached, each logged
    as a child run as it is done."""
    cached = cached_candidates(training, keys)
    to_train = [c for c in training.candidates if c.name not in cached]
    say_what_is_trained(training, to_train)
    earlier_fits = {name: trained for name, (trained, _) in cached.items()}
    newly_trained = train_candidates(to_train, split, folds, earlier_fits, training.fit_processes)
    results: list[CandidateResult] = []
    trained: dict[str, Trained] = {}
    total = len(training.candidates)
    with closing(newly_trained):
        for position, candidate in enumerate(training.candidates, start=1):
            key = keys[candidate.name]
            if candidate.name in cached:
                trained[candidate.name], result = cached[candidate.name]
                log.info(
                    "[%d/%d] %s: unchanged since it was trained (key %s), reused",
                    *(position, total, candidate.name, key),
                )
            else:
                how = (
                    f"assembled from {', '.join(candidate.members)}"
                    if candidate.members
                    else "cross-validating"
                )
                log.info("[%d/%d] %s: %s…", position, total, candidate.name, how)
                trained[candidate.name], seconds = next(newly_trained)
                started = time.perf_counter()
                result = candidate_result(
                    candidate.name, trained[candidate.name], split, folds, categories
                )
                result.seconds = seconds + time.perf_counter() - started
                cache_candidate(
                    training.candidate_cache_dir,
                    candidate.name,
                    key,
                    trained[candidate.name],
                    result,
                )
            log_candidate(candidate, result, training.selection, reused=candidate.name in cached)
            results.append(result)
            log.info("[%d/%d] %s", position, total, progress_line(result, training.selection))
    return results, trained


def log_split_and_settings(split: Split, training: TrainingConfig) -> None:
    """Say how the listings are split and scored, and log the settings as the run's params."""
    selection = training.selection
    log.info(
        "split %d listings: %d to train (%d-fold CV), %d to test once; every candidate is "
        "scored on the full view and on the required view (the API's required fields only)",
        len(split.train_features) + len(split.test_features),
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


def register_winner(
    winner: CandidateResult,
    winner_key: str,
    trained: Trained,
    split: Split,
    training: TrainingConfig,
    model_name: str,
    categories: list[str],
    training_run_id: str,
    lineage_tags: dict[str, str],
) -> str:
    """The winner's registered version: the one already registered under its key, kept byte
    for byte, else a new version, tagged, downloaded to models/ and described for the stages
    after."""
    client = MlflowClient()
    packaging = code_digest(PACKAGING_CODE, MODEL_PACKAGES)
    model_version = registered_challenger(
        client, training.challenger_path, training.model_dir, model_name, winner_key, packaging
    )
    if model_version is not None:
        kept = (winner.name, model_name, model_version)
        # models/challenger and its JSON stay as they are, so the stages after this one,
        # which depend on them only, have nothing to redo.
        log.info("%s is unchanged since it was registered as %s v%s: kept", *kept)
        return model_version
    started = time.perf_counter()
    model_version = log_and_register(
        trained.model,
        model_name,
        input_example(split.test_features),
        input_field_types(),
        categories,
    )
    tags = version_tags(winner, winner_key, packaging, training.selection, lineage_tags)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, model_version, key, value)
    seconds = time.perf_counter() - started
    log.info("registered v%s (%s) in %.1f s, no alias yet", model_version, winner.name, seconds)
    # The local copy is the registered version itself, so explaining and serving it without a
    # tracking server runs exactly the bytes the registry holds.
    download_version(model_name, model_version, training.model_dir)
    document = challenger_document(
        winner,
        winner_key,
        training.selection,
        model_name,
        model_version,
        version_uri(model_name, model_version),
        training_run_id,
        # Promotion checks the champion again before it moves the alias.
        alias_version(client, model_name, CHAMPION),
    )
    write_json_atomically(training.challenger_path, document)
    return model_version


def write_and_log_results(
    results: list[CandidateResult], winner: CandidateResult, training: TrainingConfig
) -> None:
    """Write the metrics and the candidates' table, and log them with the winner's scores."""
    selection = training.selection
    write_json_atomically(
        training.metrics_path,
        metrics_document(results, winner, training.reference_candidate, selection),
    )
    with atomic_path(training.candidates_path) as temporary:
        candidates_frame(results, winner.name, selection).to_csv(temporary, index=False)
    mlflow.log_metrics(
        {
            f"test_{view}_{name}": value
            for view, scores in winner.views.items()
            for name, value in scores.test.items()
        }
    )
    mlflow.log_artifact(str(training.candidates_path))
    mlflow.log_artifact(str(training.metrics_path))


def run(context: StageContext) -> None:
    """Score every candidate on both views, register and save the winner, write metrics."""
    config = context.config
    training = config.training
    categories = config.data_prep.price_categories
    split = read_split(config, "training")
    prepared_sha = sha256_file(config.data.prepared_path)
    with stage_run(
        context.tracking, context.lineage, "training", tags={PREPARED_DATA_TAG: prepared_sha}
    ) as training_run:
        data_prep_run = find_data_prep_run(training_run.info.experiment_id, prepared_sha)
        lineage_tags = {**context.lineage.tags(), PREPARED_DATA_TAG: prepared_sha}
        if data_prep_run:
            lineage_tags[DATA_PREP_RUN_TAG] = data_prep_run
        mlflow.set_tags(lineage_tags)
        log_split_and_settings(split, training)
        folds = stratified_folds(split.train_target, training.cv_folds, training.cv_random_state)
        keys = candidate_keys(
            training, prepared_sha, categories, code_digest(TRAINING_CODE, TRAINING_LIBRARIES)
        )
        results, trained = trained_candidates(training, keys, split, folds, categories)

        winner = choose_winner(results, training.selection)
        model_name = context.tracking.registered_model_name
        model_version = register_winner(
            winner,
            keys[winner.name],
            trained[winner.name],
            split,
            training,
            model_name,
            categories,
            training_run.info.run_id,
            lineage_tags,
        )
        write_and_log_results(results, winner, training)
        mlflow.set_tags({"mlops_lab.winner": winner.name, "mlops_lab.version": model_version})

        print(results_table(results, winner.name, training.selection))
        print(
            f"\n{winner.name} registered as {model_name} v{model_version}; the promote stage "
            "gives it an alias once it has answered through the serving path."
        )
