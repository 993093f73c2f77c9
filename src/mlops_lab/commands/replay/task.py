"""`mlops-lab replay`: listings of the prepared table sent to a running service, shifted or not,
and optionally their true prices as feedback: traffic for `mlops-lab monitor` to look at."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pandas as pd
import requests

from mlops_lab.commands.replay.transform import (
    ReplayError,
    batches,
    feedback_records,
    parse_conditions,
    sampled,
    shifted,
)
from mlops_lab.common.tables import read_parquet
from mlops_lab.config import LabConfig
from mlops_lab.evaluation.prepared import PreparedTableMissing, split_like_notebook
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS
from mlops_lab.serving.feedback_token import feedback_token as read_feedback_token
from mlops_lab.serving.payloads import payloads

log = logging.getLogger(__name__)
LOG_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Replayed:
    """What a replay sent and what came back."""

    listings: int
    categories: dict[str, int]
    feedback: int


def read_part(config: LabConfig, part: str) -> pd.DataFrame:
    """The prepared listings of one part of the notebook's split (or all), with their price."""
    path = config.data.prepared_path
    if not path.is_file():
        raise PreparedTableMissing(f"{path} does not exist: run `dvc repro data_prep` first")
    listings = read_parquet(path)
    if part == "all":
        return listings
    split = split_like_notebook(
        listings, config.training.test_size, config.training.split_random_state
    )
    features = split.test_features if part == "test" else split.train_features
    return listings.loc[features.index]


def why(error: requests.RequestException) -> str:
    """The cause of a failed request in a few words (the OS's, when it has them), not the
    chain of urllib3 objects that requests puts in its message."""
    found = re.search(r"\[Errno -?\d+\] ([^'\"()]+)", str(error))
    return found.group(1).strip() if found else error.__class__.__name__


def post_json(session: requests.Session, url: str, body: Any, wait_for_log: bool = False) -> Any:
    """The service's JSON answer; ReplayError with its status and the fields it named. With
    `wait_for_log`, a 404 (predictions not in the log yet: each worker writes its own within
    a second) or a 503 (the store busy) is retried for up to LOG_WAIT_SECONDS."""
    deadline = time.monotonic() + (LOG_WAIT_SECONDS if wait_for_log else 0)
    while True:
        try:
            response = session.post(url, json=body, timeout=120)
        except requests.RequestException as error:
            raise ReplayError(f"cannot reach the service at {url}: {why(error)}") from error
        if response.status_code not in (404, 503) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if response.status_code != 200:
        try:
            answer = response.json()
            details = "; ".join(
                f"{detail['field']}: {detail['problem']}" for detail in answer["details"][:3]
            )
            problem = f"{answer['error']} ({details})"
        except (ValueError, KeyError, TypeError):
            problem = response.text[:300]
        raise ReplayError(f"{url} answered {response.status_code}: {problem}")
    return response.json()


@dataclass(frozen=True)
class ReplayOptions:
    """`mlops-lab replay`'s options: where to send, which listings, and whether to send their
    true prices too."""

    url: str = "http://127.0.0.1:8000"
    part: str = "test"
    where: tuple[str, ...] = ()
    limit: int | None = None
    seed: int = 0
    batch_size: int = 100
    feedback: bool = False
    price_factor: float = 1.0


def run(config: LabConfig, environment: Mapping[str, str], options: ReplayOptions) -> Replayed:
    """Send the chosen listings to the service's /predict, then, with `feedback`, their prices
    to /feedback under the service's token."""
    token_path = Path.cwd() / config.monitoring.prediction_log.feedback_token_path
    feedback_token = (
        read_feedback_token(environment, token_path, create=False).value
        if options.feedback
        else None
    )
    url, part, where = options.url, options.part, options.where
    limit, seed, batch_size = options.limit, options.seed, options.batch_size
    conditions = parse_conditions(where)
    listings = sampled(shifted(read_part(config, part), conditions), limit, seed)
    bodies = payloads(listings[["id", *MODEL_INPUT_FIELDS]])
    url = url.rstrip("/")
    categories: Counter[str] = Counter()
    sent = 0
    with requests.Session() as session:
        with click.progressbar(length=len(bodies), label="predict") as progress:
            for batch in batches(bodies, batch_size):
                answer = post_json(session, f"{url}/predict", batch)
                categories.update(p["price_category"] for p in answer["predictions"])
                progress.update(len(batch))
        log.info("replayed %d listings of the %s part to %s/predict", len(bodies), part, url)
        if feedback_token is not None:
            session.headers["Authorization"] = f"Bearer {feedback_token}"
            for batch in batches(feedback_records(listings, options.price_factor), batch_size):
                answer = post_json(session, f"{url}/feedback", batch, wait_for_log=True)
                sent += answer["received"]
            log.info("posted %d true prices to %s/feedback", sent, url)
    return Replayed(len(bodies), dict(sorted(categories.items())), sent)
