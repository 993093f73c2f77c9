"""What the service serves and how much it takes: config.yaml first, the environment over it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_lab.kernel.config import LabConfig, load_config
from mlops_lab.kernel.registry import CHAMPION, alias_uri
from mlops_lab.kernel.tracking import tracking_uri

# Where `mlops-lab serve --config` tells each worker its config.yaml is.
CONFIG_VARIABLE = "MLOPS_LAB_CONFIG"


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
    max_batch_size: int = 1000
    max_body_bytes: int = 2 * 1024 * 1024
    max_explain_listings: int = 100
    load_retry_seconds: float = 10.0

    @classmethod
    def from_config(cls, config: LabConfig, environment: Mapping[str, str]) -> ServiceSettings:
        """MODEL_URI, else the registry's champion when a tracking server is set, else the
        champion's local folder; limits from the environment, the rest from config.yaml."""
        default = (
            alias_uri(config.tracking.registered_model_name, CHAMPION)
            if environment.get("MLFLOW_TRACKING_URI")
            else str(config.promotion.champion_dir)
        )
        return cls(
            model_uri=environment.get("MODEL_URI", default),
            tracking_uri=tracking_uri(environment, Path.cwd(), config.tracking.embedded_store_dir),
            categories=tuple(config.data_prep.price_categories),
            price_bin_edges=tuple(config.data_prep.price_bin_edges),
            example=dict(config.prediction_app.challenge_payload),
            max_batch_size=int(environment.get("MAX_BATCH_SIZE", 1000)),
            max_body_bytes=int(environment.get("MAX_BODY_BYTES", 2 * 1024 * 1024)),
            max_explain_listings=int(environment.get("MAX_EXPLAIN_LISTINGS", 100)),
            load_retry_seconds=float(environment.get("MODEL_LOAD_RETRY_SECONDS", 10)),
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
