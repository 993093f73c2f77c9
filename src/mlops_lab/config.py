"""Typed view of config.yaml, read once at the entry point and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops_lab.prediction_app.schema import Listing


class ConfigError(ValueError):
    """config.yaml is missing, unreadable or does not describe a valid pipeline."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackingConfig(_Section):
    experiment_name: str
    registered_model_name: str
    embedded_store_dir: Path


class DataConfig(_Section):
    raw_path: Path
    prepared_path: Path


class DataPrepConfig(_Section):
    sample_rows: int | None = Field(default=None, gt=0)
    sample_seed: int = 1
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
        if sorted(self.price_bin_edges) != self.price_bin_edges:
            raise ValueError("price_bin_edges must be increasing")
        return self


class CandidateConfig(_Section):
    name: str
    # soft_vote averages the probabilities of the candidates named in `members`.
    estimator: Literal["random_forest", "hist_gradient_boosting", "soft_vote"]
    features: list[str] | Literal["all"]
    params: dict[str, Any] = Field(default_factory=dict)
    members: list[str] = Field(default_factory=list)
    # most_probable: the label is the most probable category. macro_f1: the probabilities are
    # weighted (weights learnt on held-out predictions of the training part) to favour rare
    # categories; the probabilities themselves are unchanged.
    decision: Literal["most_probable", "macro_f1"] = "most_probable"
    # A file `mlops-lab tune` wrote: its `params` are laid over `params` above.
    tuned_params_path: Path | None = None

    @model_validator(mode="after")
    def _members_only_for_soft_vote(self) -> CandidateConfig:
        if self.estimator != "soft_vote":
            if self.members:
                raise ValueError(f"members are for estimator soft_vote, not {self.estimator}")
            return self
        if len(set(self.members)) < 2:
            raise ValueError(f"soft_vote needs two or more distinct members, got {self.members}")
        if self.params or self.tuned_params_path is not None:
            raise ValueError("soft_vote takes its members' parameters: give no params of its own")
        return self


class TrainingConfig(_Section):
    test_size: float = Field(gt=0, lt=1)
    split_random_state: int
    cv_folds: int = Field(ge=2)
    cv_random_state: int
    selection_metric: Literal["roc_auc_ovr", "macro_f1", "accuracy"]
    reference_candidate: str
    candidates: list[CandidateConfig] = Field(min_length=1)
    model_dir: Path
    registration_path: Path
    metrics_path: Path
    candidates_path: Path

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
        by_name = {candidate.name: candidate for candidate in self.candidates}
        for vote in self.candidates:
            for name in vote.members:
                member = by_name.get(name)
                if member is None:
                    raise ValueError(f"{vote.name}: member {name!r} is not among {names}")
                if member.estimator == "soft_vote":
                    raise ValueError(f"{vote.name}: member {name!r} is itself a soft_vote")
                # The members share the vote's one feature pipeline.
                if member.features != vote.features:
                    raise ValueError(
                        f"{vote.name}: member {name!r} has features {member.features}, "
                        f"the vote {vote.features}"
                    )
        return self


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
    candidate: str
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
    # One study per tuned candidate; `mlops-lab tune` runs the first unless told which.
    studies: list[StudyConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_study_per_candidate(self) -> TuningConfig:
        candidates = [study.candidate for study in self.studies]
        if len(set(candidates)) != len(candidates):
            raise ValueError(f"each candidate can have one study, got {candidates}")
        return self

    def study_for(self, candidate: str | None) -> StudyConfig:
        """The study of the named candidate, or the first study."""
        if candidate is None:
            return self.studies[0]
        for study in self.studies:
            if study.candidate == candidate:
                return study
        known = [study.candidate for study in self.studies]
        raise ConfigError(f"no study in tuning.studies for {candidate!r}; there are {known}")


class AblationConfig(_Section):
    candidate: str
    cv_folds: int = Field(ge=2)
    table_path: Path
    plot_path: Path


class ExplainabilityConfig(_Section):
    shap_sample_size: int = Field(gt=0)
    shap_background_size: int = Field(gt=0)
    shap_permutations: int = Field(gt=0)
    random_state: int
    reports_dir: Path
    metrics_path: Path


class PredictionAppConfig(_Section):
    model_uri: str
    output_path: Path
    # Checked by the service's own schema, so an example the API would refuse fails here.
    examples: list[Listing] = Field(min_length=1)

    @field_validator("examples")
    @classmethod
    def _examples_have_ids(cls, examples: list[Listing]) -> list[Listing]:
        for position, example in enumerate(examples):
            if example.id is None:
                raise ValueError(f"example {position} has no 'id'")
        return examples


class LabConfig(_Section):
    tracking: TrackingConfig
    data: DataConfig
    data_prep: DataPrepConfig
    training: TrainingConfig
    tuning: TuningConfig
    ablation: AblationConfig
    explainability: ExplainabilityConfig
    prediction_app: PredictionAppConfig


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


def with_member_params(
    candidate: CandidateConfig, candidates: list[CandidateConfig]
) -> CandidateConfig:
    """A soft_vote candidate with its members' estimators and parameters as its own params."""
    if not candidate.members:
        return candidate
    by_name = {other.name: other for other in candidates}
    members = {
        name: {"estimator": by_name[name].estimator, "params": by_name[name].params}
        for name in candidate.members
    }
    return candidate.model_copy(update={"params": {"members": members}})


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
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
            for issue in error.errors()
        )
        raise ConfigError(f"config file {path} is invalid: {problems}") from error
    candidates = config.training.candidates
    if tuned_params:
        candidates = [with_tuned_params(candidate) for candidate in candidates]
    candidates = [with_member_params(candidate, candidates) for candidate in candidates]
    training = config.training.model_copy(update={"candidates": candidates})
    return config.model_copy(update={"training": training})
