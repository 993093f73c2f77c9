"""What the service serves and how much it takes: config.yaml first, the environment over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops_lab.common.errors import UserError
from mlops_lab.common.secrets import SecretFileError
from mlops_lab.config import LabConfig, PredictionLogConfig, load_config
from mlops_lab.service.environment import CONFIG_VARIABLE, SLOTS_VARIABLE
from mlops_lab.service.prediction_log import PredictionLogSettings
from mlops_lab.serving.feedback_token import feedback_token
from mlops_lab.serving.loading import served_model_uri
from mlops_lab.serving.prediction_store import SWITCH_VARIABLE, prediction_store_uri
from mlops_lab.tracking.runs import tracking_uri


class SettingsError(ValueError):
    """An environment variable the service reads has a value it cannot use."""


class Limits(BaseModel):
    """The limits the environment may set, by variable name."""

    model_config = ConfigDict(extra="ignore")

    MAX_BATCH_SIZE: int = Field(default=1000, gt=0)
    MAX_BODY_BYTES: int = Field(default=2 * 1024 * 1024, gt=0)
    MAX_EXPLAIN_LISTINGS: int = Field(default=100, gt=0)
    MAX_CONCURRENT_EXPLANATIONS: int = Field(default=1, gt=0)
    MODEL_LOAD_RETRY_SECONDS: float = Field(default=10.0, gt=0)
    # config.yaml's serving.model_refresh_seconds when unset.
    MODEL_REFRESH_SECONDS: float | None = Field(default=None, gt=0)


def limits(environment: Mapping[str, str], model_refresh_seconds: float) -> dict[str, Any]:
    """The service's limits from the environment; SettingsError naming each bad variable."""
    try:
        read = Limits.model_validate(dict(environment))
    except ValidationError as error:
        problems = "; ".join(
            f"{issue['loc'][0]}={issue['input']!r}: {issue['msg']}" for issue in error.errors()
        )
        raise SettingsError(f"the service cannot start: {problems}") from error
    return {
        "max_batch_size": read.MAX_BATCH_SIZE,
        "max_body_bytes": read.MAX_BODY_BYTES,
        "max_explain_listings": read.MAX_EXPLAIN_LISTINGS,
        "max_concurrent_explanations": read.MAX_CONCURRENT_EXPLANATIONS,
        "load_retry_seconds": read.MODEL_LOAD_RETRY_SECONDS,
        "model_refresh_seconds": read.MODEL_REFRESH_SECONDS or model_refresh_seconds,
    }


def prediction_log_settings(
    config: PredictionLogConfig, environment: Mapping[str, str]
) -> PredictionLogSettings | None:
    """The prediction log's settings, or None when config.yaml or PREDICTION_LOG turns it off."""
    switch = environment.get(SWITCH_VARIABLE, "on").strip().lower()
    if switch not in ("on", "off"):
        raise SettingsError(
            f"the service cannot start: {SWITCH_VARIABLE}={switch!r}: Input should be 'on' or 'off'"
        )
    if switch == "off" or not config.enabled:
        return None
    try:
        store_uri = prediction_store_uri(environment, Path.cwd(), config.embedded_store_path)
    except SecretFileError as error:
        raise SettingsError(f"the service cannot start: PREDICTION_LOG_URI: {error}") from error
    try:
        token = feedback_token(environment, Path.cwd() / config.feedback_token_path, create=True)
    except (UserError, OSError) as error:
        raise SettingsError(f"the service cannot start: {error}") from error
    return PredictionLogSettings(
        store_uri=store_uri,
        buffer_size=config.buffer_size,
        batch_size=config.batch_size,
        flush_seconds=config.flush_seconds,
        retry_seconds=config.retry_seconds,
        feedback_wait_seconds=config.feedback_wait_seconds,
        feedback_token=token,
    )


@dataclass(frozen=True)
class ServiceSettings:
    """What the service is told, read once at start."""

    model_uri: str
    # Where a registry URI is looked up: the stages' own tracking store.
    tracking_uri: str
    categories: tuple[str, ...]
    # The price bins the categories stand for, to describe them in the API's documentation.
    price_bin_edges: tuple[float, ...]
    # The challenge's payload: the API's documented example.
    example: dict[str, Any]
    # Where the model last loaded from a registry is kept, to serve when it cannot be reached.
    model_cache_dir: Path = Path.home() / ".cache" / "mlops-lab" / "models"
    max_batch_size: int = 1000
    max_body_bytes: int = 2 * 1024 * 1024
    max_explain_listings: int = 100
    # Explanations the service computes at once, all workers together; more get 429. About
    # 0.5 s of CPU per 100 listings each, so a few callers could otherwise take every core.
    max_concurrent_explanations: int = 1
    # Where the workers share their explanation slots (server.py makes one).
    explanation_slots_dir: Path = Path(tempfile.gettempdir()) / "mlops-lab-explanations"
    load_retry_seconds: float = 10.0
    # How often each worker looks for a new champion where MODEL_URI points.
    model_refresh_seconds: float = 30.0
    # What a model must answer, as the API validates it, before it is served: the smoke
    # stage's payloads.
    check_payloads: tuple[dict[str, Any], ...] = ()
    # Where every answer is recorded; None: not recorded.
    prediction_log: PredictionLogSettings | None = None

    @classmethod
    def from_config(cls, config: LabConfig, environment: Mapping[str, str]) -> ServiceSettings:
        """MODEL_URI, else the registry's champion when a tracking server is set, else the
        champion's local folder; limits from the environment, the rest from config.yaml."""
        return cls(
            model_uri=served_model_uri(config, environment),
            tracking_uri=tracking_uri(environment, Path.cwd(), config.tracking.embedded_store_dir),
            categories=tuple(config.data_prep.price_categories),
            price_bin_edges=tuple(config.data_prep.price_bin_edges),
            example=dict(config.prediction_app.challenge_payload),
            explanation_slots_dir=Path(
                environment.get(
                    SLOTS_VARIABLE, Path(tempfile.gettempdir()) / "mlops-lab-explanations"
                )
            ),
            model_cache_dir=Path(
                environment.get("MODEL_CACHE_DIR", Path.home() / ".cache" / "mlops-lab" / "models")
            ),
            prediction_log=prediction_log_settings(config.monitoring.prediction_log, environment),
            check_payloads=tuple(config.prediction_app.payloads()),
            **limits(environment, config.serving.model_refresh_seconds),
        )

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> ServiceSettings:
        """Settings from the config.yaml that MLOPS_LAB_CONFIG names (./config.yaml if unset)."""
        path = Path(environment.get(CONFIG_VARIABLE, "config.yaml"))
        # The tuned parameters matter to training only.
        return cls.from_config(load_config(path, tuned_params=False), environment)


def settings_now() -> ServiceSettings:
    """The settings of this process's environment."""
    return ServiceSettings.from_environment(os.environ)
