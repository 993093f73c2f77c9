"""Typed view of config.yaml, read once at the entry point and passed down."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops_lab.common.errors import UserError
from mlops_lab.kernel.features import ALL_FEATURES, input_fields, resolve_features
from mlops_lab.kernel.listing import REQUIRED_FIELDS, View
from mlops_lab.kernel.modelling import MEMBER_ESTIMATORS


class ConfigError(UserError, ValueError):
    """config.yaml is missing, unreadable or does not describe a valid pipeline."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackingConfig(_Section):
    experiment_name: str
    registered_model_name: str
    embedded_store_dir: Path


class DataConfig(_Section):
    raw_path: Path
    # What `mlops-lab harvest` wrote: listings labelled by feedback, which data_prep adds.
    harvested_path: Path
    prepared_path: Path


class DataPrepConfig(_Section):
    sample_rows: int | None = Field(default=None, gt=0)
    sample_seed: int = 1
    # A raw file that leaves fewer listings, or drops a larger share of its rows, stops
    # data_prep before it replaces the prepared table.
    minimum_rows: int = Field(default=100, gt=0)
    maximum_dropped_share: float = Field(default=0.5, ge=0, le=1)
    price_bin_edges: list[float] = Field(min_length=2)
    price_categories: list[str] = Field(min_length=2)
    metrics_path: Path

    @model_validator(mode="after")
    def _one_category_per_bin(self) -> DataPrepConfig:
        if len(self.price_categories) != len(self.price_bin_edges):
            raise ValueError(
                "price_categories needs one name per bin: the last edge opens the top bin, so "
                f"{len(self.price_bin_edges)} edges make {len(self.price_bin_edges)} categories, "
                f"got {len(self.price_categories)}"
            )
        edges = self.price_bin_edges
        if any(upper <= lower for lower, upper in pairwise(edges)):
            raise ValueError(f"price_bin_edges must be strictly increasing, got {edges}")
        return self


class CandidateConfig(_Section):
    # Its key in config.yaml's `training.candidates`.
    name: str
    # soft_vote averages the probabilities of the candidates named in `members`; field_router
    # answers each listing with the first member whose listing fields it carries.
    estimator: Literal["random_forest", "hist_gradient_boosting", "soft_vote", "field_router"]
    # "all", "required" (what the API's required fields give) or a list of feature names;
    # a field_router takes its members' features and names none itself.
    features: list[str] | Literal["all", "required"] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    members: list[str] = Field(default_factory=list)
    # most_probable: the label is the most probable category. macro_f1: the probabilities are
    # weighted (weights learnt on held-out predictions of the training part) to favour rare
    # categories; the probabilities themselves are unchanged.
    decision: Literal["most_probable", "macro_f1"] = "most_probable"
    # A file `mlops-lab tune` wrote: its `params` are laid over `params` above.
    tuned_params_path: Path | None = None

    @model_validator(mode="after")
    def _members_only_for_ensembles(self) -> CandidateConfig:
        if self.estimator == "field_router":
            if self.features is not None or self.decision != "most_probable":
                raise ValueError("a field_router takes its members' features and labels")
        elif self.features is None:
            raise ValueError(f"features: give 'all', 'required' or a list for {self.estimator}")
        if self.estimator not in ENSEMBLES:
            if self.members:
                raise ValueError(f"members are for {' or '.join(ENSEMBLES)}, not {self.estimator}")
            unknown = sorted(set(resolve_features(self.features)) - set(ALL_FEATURES))
            if unknown:
                raise ValueError(f"unknown features {unknown}; known: {list(ALL_FEATURES)}")
            return self
        if len(set(self.members)) < 2:
            raise ValueError(
                f"{self.estimator} needs two or more distinct members, got {self.members}"
            )
        if self.params or self.tuned_params_path is not None:
            raise ValueError(
                f"{self.estimator} takes its members' parameters: give none of its own"
            )
        return self


ENSEMBLES = ("soft_vote", "field_router")


class SelectionConfig(_Section):
    # Higher is better for each of these.
    metric: Literal["roc_auc_ovr", "macro_f1", "accuracy"]
    # The score is the metric's mean over the views, weighted by these.
    view_weights: dict[View, float]

    @field_validator("view_weights")
    @classmethod
    def _some_weight(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"view weights must be non-negative and not all zero, got {weights}")
        return weights


class TrainingConfig(_Section):
    test_size: float = Field(gt=0, lt=1)
    split_random_state: int
    cv_folds: int = Field(ge=2)
    cv_random_state: int
    # joblib's n_jobs: -1 is one process per core.
    fit_processes: int = Field(ge=-1, le=64)
    selection: SelectionConfig
    reference_candidate: str
    # Written in config.yaml as a mapping of name to settings, so that `dvc exp run -S
    # training.candidates.NAME.params.P=V` names what it changes; here a list in that order.
    candidates: list[CandidateConfig] = Field(min_length=1)
    # The model this run trained: the challenger, until the promote stage has judged it.
    model_dir: Path
    challenger_path: Path
    metrics_path: Path
    candidates_path: Path
    # Each candidate's fitted model, held-out predictions and scores, under a key of everything
    # they depend on: a rerun retrains only the candidates whose key changed.
    candidate_cache_dir: Path

    @field_validator("candidates", mode="before")
    @classmethod
    def _named_in_order(cls, candidates: Any) -> Any:
        if not isinstance(candidates, dict):
            raise ValueError("give a mapping of each candidate's name to its settings")
        return [_with_name(name, settings) for name, settings in candidates.items()]

    @field_validator("fit_processes")
    @classmethod
    def _some_processes(cls, processes: int) -> int:
        if processes == 0:
            raise ValueError("must be a number of processes, or -1 for one per core, not 0")
        return processes

    @model_validator(mode="after")
    def _reference_is_a_candidate(self) -> TrainingConfig:
        names = [candidate.name for candidate in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names must be unique, got {names}")
        if self.reference_candidate not in names:
            raise ValueError(
                f"reference_candidate {self.reference_candidate!r} is not among the candidates "
                f"{names}: the notebook's model is always trained as the reference"
            )
        for position, ensemble in enumerate(self.candidates):
            for name in ensemble.members:
                _check_member(ensemble, name, self.candidates[:position], names)
        return self

    def candidate(self, name: str, setting: str) -> CandidateConfig:
        """The candidate a command's `setting` names; ConfigError if there is none."""
        # Checked when the command runs, not when config is read: a pipeline that never runs
        # the command needs no such candidate.
        found = next((c for c in self.candidates if c.name == name), None)
        if found is None:
            names = [c.name for c in self.candidates]
            raise ConfigError(f"{setting} {name!r} is not among the training candidates {names}")
        return found


def _with_name(name: str, settings: Any) -> Any:
    """A candidate's settings with the name they are keyed by."""
    if not isinstance(settings, dict):
        raise ValueError(f"{name}: give its settings as a mapping")
    if "name" in settings:
        raise ValueError(f"{name}: its name is its key; give no 'name'")
    return {"name": name, **settings}


def _check_member(
    ensemble: CandidateConfig, name: str, earlier: list[CandidateConfig], names: list[str]
) -> None:
    """Raise ValueError naming what is wrong with one member of a soft_vote or field_router."""
    by_name = {candidate.name: candidate for candidate in earlier}
    if name not in names:
        raise ValueError(f"{ensemble.name}: member {name!r} is not among {names}")
    member = by_name.get(name)
    # Training reuses each member's fitted models and cross-validated predictions.
    if member is None:
        raise ValueError(f"{ensemble.name}: member {name!r} must be listed before it")
    if member.estimator == "field_router":
        raise ValueError(f"{ensemble.name}: member {name!r} is itself a field_router")
    if ensemble.estimator == "soft_vote":
        if member.estimator == "soft_vote":
            raise ValueError(f"{ensemble.name}: member {name!r} is itself a soft_vote")
        # The members share the vote's one feature pipeline.
        if member.features != ensemble.features:
            raise ValueError(
                f"{ensemble.name}: member {name!r} has features {member.features}, "
                f"the vote {ensemble.features}"
            )
    elif name == ensemble.members[-1]:
        needs = set(input_fields(resolve_features(member.features))) - set(REQUIRED_FIELDS)
        if needs:
            raise ValueError(
                f"{ensemble.name}: its last member {name!r} answers every listing the others "
                f"cannot, so it may need only the API's required fields, not {sorted(needs)}"
            )


class SearchDimension(_Section):
    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> SearchDimension:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class StudyConfig(_Section):
    study_name: str
    search_space: dict[str, SearchDimension] = Field(min_length=1)
    tuned_params_path: Path


class TuningConfig(_Section):
    # Optuna's study storage when OPTUNA_STORAGE is unset: a SQLite file.
    embedded_storage_path: Path
    trials: int = Field(gt=0)
    cv_folds: int = Field(ge=2)
    # A worker that stops answering for 3 heartbeats has its running trial marked failed.
    heartbeat_seconds: int = Field(gt=0)
    # One study per tuned candidate, by the candidate's name; `mlops-lab tune` runs the first
    # unless told which.
    studies: dict[str, StudyConfig] = Field(min_length=1)

    def study_for(self, candidate: str | None) -> tuple[str, StudyConfig]:
        """The named candidate and its study, or the first study's."""
        if candidate is None:
            return next(iter(self.studies.items()))
        if candidate not in self.studies:
            known = list(self.studies)
            raise ConfigError(f"no study in tuning.studies for {candidate!r}; there are {known}")
        return candidate, self.studies[candidate]


class AblationConfig(_Section):
    candidate: str
    cv_folds: int = Field(ge=2)
    table_path: Path
    plot_path: Path


class ExplainabilityReports(_Section):
    """Where each of the explainability stage's reports goes."""

    shap_mean_abs: Path
    shap_beeswarm: Path
    confusion_matrix: Path
    per_class_metrics: Path
    reliability: Path
    test_predictions: Path
    shap_mean_abs_table: Path


class ExplainabilityConfig(_Section):
    shap_sample_size: int = Field(gt=0)
    shap_background_size: int = Field(gt=0)
    shap_permutations: int = Field(gt=0)
    random_state: int
    reports: ExplainabilityReports
    metrics_path: Path


class PromotionConfig(_Section):
    # Always the champion's files: what `make serve` serves without a tracking server.
    champion_dir: Path
    # Which version is the champion and which the challenger, after the last promote stage.
    registration_path: Path
    # Scoring the champion again and finding the alias moved meanwhile: give up after this.
    attempts: int = Field(default=3, ge=1)
    # On the test part's listings labelled by the service's traffic (when there are at least
    # monitoring.minimum_window), the challenger may score at most this much below the
    # champion (selection score) and still be promoted.
    recent_traffic_tolerance: float = Field(default=0.01, ge=0)


class PredictionAppConfig(_Section):
    output_path: Path
    # The challenge's payload: what every caller sends, the API's documented example, and the
    # first listing the smoke stage answers. The service's own schema checks it and the
    # examples there (and tests/unit/test_contracts.py here), so one the API would refuse fails.
    challenge_payload: dict[str, Any]
    # By a name that says what each one tries.
    examples: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _payloads_have_ids(self) -> PredictionAppConfig:
        named = {"challenge_payload": self.challenge_payload, **self.examples}
        for name, example in named.items():
            if example.get("id") is None:
                raise ValueError(f"{name} has no 'id'")
        return self

    def payloads(self) -> list[dict[str, Any]]:
        """Every listing the smoke stage answers: the challenge's payload first."""
        return [self.challenge_payload, *self.examples.values()]


class ServingConfig(_Section):
    model_refresh_seconds: float = Field(gt=0)


class ScoringConfig(_Section):
    # Listings validated and scored at a time by `mlops-lab score`: its progress moves per chunk.
    chunk_size: int = Field(gt=0)


class PredictionLogConfig(_Section):
    enabled: bool
    embedded_store_path: Path
    buffer_size: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    flush_seconds: float = Field(gt=0)
    retry_seconds: float = Field(gt=0)
    feedback_wait_seconds: float = Field(gt=0, le=30)
    feedback_token_path: Path


# Evidently's drift measures that are distances (drift at or past the threshold), not tests
# whose p-values make every small difference "significant" in a large window.
NumericDriftMethod = Literal["wasserstein", "psi", "hellinger", "jensenshannon", "kl_div"]
CategoricalDriftMethod = Literal["jensenshannon", "psi", "hellinger", "kl_div"]


class DriftConfig(_Section):
    numeric_method: NumericDriftMethod
    numeric_threshold: float = Field(gt=0)
    categorical_method: CategoricalDriftMethod
    categorical_threshold: float = Field(gt=0)
    # A field sent with fewer of the window's listings is listed as not tested.
    minimum_values: int = Field(gt=0)
    # The window has drifted when at least this share of the fields tested drifted.
    alert_share: float = Field(gt=0, le=1)


class QualityConfig(_Section):
    # Predictions with feedback needed before quality is judged.
    minimum_feedback: int = Field(gt=0)
    # An alert when the window's ROC AUC falls more than this below the test part's.
    maximum_roc_auc_drop: float = Field(gt=0, lt=1)


class MonitoringConfig(_Section):
    prediction_log: PredictionLogConfig
    # `mlops-lab monitor`'s runs go to an experiment of their own, beside the pipeline's.
    experiment_name: str
    report_dir: Path
    # The most recent this many predictions of the model (after --since/--until).
    window_size: int = Field(gt=0)
    # Fewer predictions than this are too few to judge: monitor stops with a message.
    minimum_window: int = Field(gt=0)
    seed: int = 0
    drift: DriftConfig
    quality: QualityConfig


class LoopConfig(_Section):
    # `mlops-lab loop`'s decisions go to an experiment of their own, beside the pipeline's.
    experiment_name: str
    # Each decision is also POSTed here as JSON; empty: nowhere.
    notify_url: str = ""
    # A challenger that passes the gate waits as `challenger` until a person runs
    # `mlops-lab promote --approve VERSION`.
    require_approval: bool = False
    # When the stack's scheduler runs the loop: a cron expression, in UTC.
    schedule: str = Field(min_length=9)

    @field_validator("notify_url")
    @classmethod
    def _http_or_empty(cls, url: str) -> str:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http:// or https:// URL (or empty)")
        return url


class LabConfig(_Section):
    tracking: TrackingConfig
    data: DataConfig
    data_prep: DataPrepConfig
    training: TrainingConfig
    tuning: TuningConfig
    ablation: AblationConfig
    explainability: ExplainabilityConfig
    prediction_app: PredictionAppConfig
    promotion: PromotionConfig
    serving: ServingConfig
    scoring: ScoringConfig
    monitoring: MonitoringConfig
    loop: LoopConfig


def with_tuned_params(candidate: CandidateConfig) -> CandidateConfig:
    """The candidate with the parameters `mlops-lab tune` found laid over its own."""
    if candidate.tuned_params_path is None:
        return candidate
    try:
        tuned = yaml.safe_load(candidate.tuned_params_path.read_text())["params"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as error:
        raise ConfigError(
            f"candidate {candidate.name}: cannot read tuned parameters from "
            f"{candidate.tuned_params_path} ({error}); run `mlops-lab tune` to write them"
        ) from error
    return candidate.model_copy(update={"params": {**candidate.params, **tuned}})


def check_estimator(candidate: CandidateConfig) -> None:
    """ConfigError naming the candidate if scikit-learn would refuse its estimator's params."""
    if candidate.estimator in ENSEMBLES:
        return  # its members are candidates, checked on their own
    try:
        estimator = MEMBER_ESTIMATORS[candidate.estimator](**candidate.params)
        # What fit() checks first: a private call, kept on measurement (docs/layout.md).
        estimator._validate_params()
    except (TypeError, ValueError) as error:
        raise ConfigError(f"training.candidates.{candidate.name}: {error}") from error


def with_member_params(
    candidate: CandidateConfig, candidates: list[CandidateConfig]
) -> CandidateConfig:
    """A soft_vote or field_router candidate with its members' settings as its own params:
    {estimator, params} by name for a vote, {estimator, features, params, decision} for a
    router (members listed earlier have theirs resolved already)."""
    if not candidate.members:
        return candidate
    by_name = {other.name: other for other in candidates}
    fields = ["estimator", "params"]
    if candidate.estimator == "field_router":
        fields += ["features", "decision"]
    members = {
        name: {field: getattr(by_name[name], field) for field in fields}
        for name in candidate.members
    }
    return candidate.model_copy(update={"params": {"members": members}})


def _where(location: tuple, raw: dict) -> str:
    """A validation error's place in config.yaml, a candidate by its name, not its position."""
    parts = list(location)
    if parts[:2] == ["training", "candidates"] and len(parts) > 2 and isinstance(parts[2], int):
        # Reaching an index here means validation made the mapping a list, in its order.
        parts[2] = list(raw["training"]["candidates"])[parts[2]]
    return ".".join(str(part) for part in parts)


def load_config(path: Path, tuned_params: bool = True) -> LabConfig:
    """Read and validate config.yaml; its relative paths are relative to the working directory.
    Tuned candidates get their tuned parameters unless `tuned_params` is off (the tuner, which
    writes them, must run before they exist)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    try:
        config = LabConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{_where(issue['loc'], raw)}: {issue['msg']}" for issue in error.errors()
        )
        raise ConfigError(f"config file {path} is invalid: {problems}") from error
    candidates = config.training.candidates
    if tuned_params:
        candidates = [with_tuned_params(candidate) for candidate in candidates]
    # Every estimator's parameters checked now, not when its candidate's turn comes after
    # the ones before it have trained for minutes.
    for candidate in candidates:
        check_estimator(candidate)
    resolved: list[CandidateConfig] = []
    for candidate in candidates:
        resolved.append(with_member_params(candidate, resolved))
    training = config.training.model_copy(update={"candidates": resolved})
    return config.model_copy(update={"training": training})
