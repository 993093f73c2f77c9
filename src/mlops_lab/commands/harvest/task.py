"""`mlops-lab harvest`: read every logged prediction that got feedback from the prediction log,
keep those that can be training listings, and write them where data_prep takes them."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect

from mlops_lab.commands.harvest.transform import labelled_listings
from mlops_lab.common.errors import UserError
from mlops_lab.common.files import atomic_path
from mlops_lab.common.tables import read_parquet
from mlops_lab.config import LabConfig
from mlops_lab.serving.prediction_store import (
    FEEDBACK,
    labelled_predictions,
    prediction_store_uri,
    store_engine,
)

log = logging.getLogger(__name__)


class NothingToHarvest(UserError, FileNotFoundError):
    """The prediction log has no feedback table: no service has logged to it yet."""


@dataclass(frozen=True)
class Harvested:
    """What a harvest wrote, and what it left out and why."""

    path: Path
    listings: int
    dropped: dict[str, int]
    # The DVC remote the version was pushed to, if there is a default one.
    pushed_to: str | None
    # False when the log holds exactly what the last harvest wrote: the file is left as it was.
    new: bool = True


def run(config: LabConfig, environment: Mapping[str, str]) -> Harvested:
    """Write the labelled listings of the whole log (a harvest replaces the last one)."""
    uri = prediction_store_uri(
        environment, Path.cwd(), config.monitoring.prediction_log.embedded_store_path
    )
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise NothingToHarvest(f"no prediction log at {uri}: serve, then send feedback, first")
    engine = store_engine(uri)
    try:
        if not inspect(engine).has_table(FEEDBACK.name):
            raise NothingToHarvest(f"the prediction log at {engine.url!r} has no feedback yet")
        rows = labelled_predictions(engine)
    finally:
        engine.dispose()
    data_prep = config.data_prep
    table, dropped = labelled_listings(rows, data_prep.price_bin_edges, data_prep.price_categories)
    path = config.data.harvested_path
    if path.is_file() and read_parquet(path).equals(table):
        log.info("%s already holds these %d labelled listings", path, len(table))
        return Harvested(path, len(table), dropped, pushed_to=None, new=False)
    with atomic_path(path) as temporary:
        table.to_parquet(temporary, index=False)
    log.info("%d labelled listings written to %s; left out: %s", len(table), path, dropped)
    return Harvested(path, len(table), dropped, versioned(path))


def dvc(*arguments: str) -> str:
    """Run a DVC command; its output, or a UserError with what DVC said."""
    result = subprocess.run(["dvc", *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"`dvc {' '.join(arguments)}` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def versioned(path: Path) -> str | None:
    """Track this version of the file with DVC, and push it to the default remote if there
    is one; that remote's name, or None."""
    dvc("add", "--quiet", str(path))
    # Empty when no level of DVC's config (the lab image sets the system one) names a remote.
    remote = dvc("config", "core.remote")
    if remote:
        dvc("push", "--quiet", f"{path}.dvc")
    return remote or None


def summary_lines(harvested: Harvested) -> list[str]:
    """What a person reads after a harvest."""
    left_out = ", ".join(f"{reason} {count}" for reason, count in harvested.dropped.items())
    if not harvested.new:
        return [
            f"nothing new: {harvested.path} already holds these {harvested.listings} labelled "
            f"listings (left out: {left_out or 'none'})"
        ]
    pushed = f", pushed to DVC remote {harvested.pushed_to}" if harvested.pushed_to else ""
    return [
        f"{harvested.listings} labelled listings in {harvested.path}",
        f"left out: {left_out or 'none'}",
        f"tracked by DVC in {harvested.path}.dvc{pushed}: commit it to keep this version",
        "data_prep takes them at the next `dvc repro`",
    ]
