"""score: a file of listings → each one's price category and probabilities from the champion,
loaded and answered exactly as the service does. Not part of `dvc repro`: the batch job users
schedule when they have no service to call."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click
import mlflow
import pandas as pd

from mlops_lab.commands.score.transform import (
    RejectedRow,
    ScoringInputError,
    api_fields_of_scrape,
    columns_the_api_ignores,
    file_kind,
    is_inside_airbnb,
    numbers_where_readable,
    rejected_frame,
    rejected_path,
    row_locations,
    scored_frame,
    validate_rows,
)
from mlops_lab.common.files import atomic_path
from mlops_lab.common.tables import read_parquet
from mlops_lab.config import LabConfig
from mlops_lab.kernel.inside_airbnb import raw_columns_to_read, read_listings_csv
from mlops_lab.serving.loading import (
    ServedModel,
    load_served_model,
    named_identity,
    served_model_uri,
)
from mlops_lab.serving.payloads import payloads
from mlops_lab.tracking.runs import tracking_uri

log = logging.getLogger(__name__)


def read_listings(path: Path) -> tuple[pd.DataFrame, str]:
    """The API's fields of every row of the file, and its kind; ScoringInputError or
    RawDataError if it cannot be read."""
    kind = file_kind(path)
    if kind == "parquet":
        if not path.is_file():
            raise ScoringInputError(f"{path} does not exist")
        try:
            return read_parquet(path), kind
        except (OSError, ValueError) as error:
            # pyarrow's errors for a file that is no Parquet are ValueErrors too.
            raise ScoringInputError(f"{path} cannot be read: {error}") from error
    text = read_listings_csv(
        path,
        str(path),
        lambda header: raw_columns_to_read(path, header) if is_inside_airbnb(header) else None,
    )
    if is_inside_airbnb(list(text.columns)):
        return api_fields_of_scrape(text), kind
    return numbers_where_readable(text), kind


def write_table(frame: pd.DataFrame, path: Path, kind: str) -> None:
    """The table at `path`, whole or not at all."""
    try:
        with atomic_path(path) as temporary:
            if kind == "parquet":
                frame.to_parquet(temporary, index=False)
            else:
                frame.to_csv(
                    temporary, index=False, compression="gzip" if path.suffix == ".gz" else None
                )
    except OSError as error:
        raise ScoringInputError(f"{path} cannot be written: {error.strerror}") from error


def check_writable(folder: Path) -> None:
    """ScoringInputError now, not after the scoring, if the outputs cannot be written here."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ScoringInputError(
            f"{folder}: the scores cannot be written there ({error.strerror})"
        ) from error


def readable_listings(input_path: Path) -> tuple[pd.DataFrame, str]:
    """The input's rows without the columns the API ignores, and the input's kind."""
    listings, input_kind = read_listings(input_path)
    if listings.empty:
        raise ScoringInputError(f"{input_path} has no rows to score, only a header")
    ignored = columns_the_api_ignores(list(listings.columns))
    if ignored:
        log.warning("ignoring columns that are no field of the API: %s", ", ".join(ignored))
        listings = listings.drop(columns=ignored)
    log.info("read %d listings from %s", len(listings), input_path)
    return listings, input_kind


def score_in_chunks(
    model: ServedModel, listings: pd.DataFrame, chunk_size: int, with_header: bool
) -> tuple[list[pd.DataFrame], list[RejectedRow]]:
    """The scores of every valid row and the rows refused, chunk by chunk, with progress: a
    bar on a terminal, else a log line per chunk."""
    started = time.perf_counter()
    scored: list[pd.DataFrame] = []
    rejected: list[RejectedRow] = []
    with click.progressbar(
        length=len(listings), label="scoring", file=sys.stderr, show_pos=True
    ) as progress:
        for first in range(0, len(listings), chunk_size):
            chunk = listings.iloc[first : first + chunk_size]
            locations = row_locations(len(chunk), first, with_header)
            valid, positions, problems = validate_rows(payloads(chunk), locations)
            rejected += problems
            if valid:
                found = [locations[position] for position in positions]
                scored.append(
                    scored_frame(
                        model.predict(valid), found, model.categories, model.name, model.version
                    )
                )
            progress.update(len(chunk))
            if not sys.stderr.isatty():
                done = first + len(chunk)
                log.info(
                    "scored %d of %d listings (%.0f%%), %.0f listings/s",
                    *(done, len(listings), 100 * done / max(len(listings), 1)),
                    done / max(time.perf_counter() - started, 1e-9),
                )
    return scored, rejected


def write_rejected(rejected: list[RejectedRow], total: int, output_path: Path) -> None:
    """Write the rows not scored beside the scores and name the first ten; with none, remove
    an earlier run's file, which would describe rows this run scored."""
    errors_path = rejected_path(output_path)
    if not rejected:
        errors_path.unlink(missing_ok=True)
        return
    write_table(rejected_frame(rejected), errors_path, "csv")
    for row in rejected[:10]:
        log.warning("%s (id %s) not scored: %s", row.location, row.id, row.problem)
    more = f", and {len(rejected) - 10} more" if len(rejected) > 10 else ""
    log.warning(
        "%d of %d rows not scored%s: all of them, with why, in %s",
        *(len(rejected), total, more, errors_path),
    )


@dataclass(frozen=True)
class ScoreOptions:
    """`mlops-lab score`'s arguments and options."""

    input_path: Path
    output_path: Path
    model_uri: str | None = None
    # python: in this process, as the service answers; spark: mlflow.pyfunc.spark_udf on Spark.
    engine: str = "python"
    master: str = "local[*]"


def run_on_spark(
    config: LabConfig, environment: Mapping[str, str], options: ScoreOptions, uri: str
) -> int:
    """Score on Spark (score/spark.py) with the model `uri` names now; write the rows not
    scored beside the scores. Returns the rejected count."""
    from mlops_lab.commands.score import spark

    if file_kind(options.output_path) != "parquet":
        raise ScoringInputError(
            f"{options.output_path}: Spark writes the scores as a Parquet folder (.parquet)"
        )
    spark.check_spark_can_run(environment)
    identity = named_identity(uri)
    # Pinned, so that an alias moving mid-job cannot mix two models.
    pinned = f"models:/{identity.name}/{identity.version}" if uri.startswith("models:/") else uri
    session = None
    try:
        session = spark.spark_session(options.master, environment)
        written, rejected = spark.score_on_spark(
            session,
            (options.input_path, options.output_path),
            (pinned, identity.name, identity.version),
            list(config.data_prep.price_categories),
        )
    except spark.spark_errors() as error:
        raise spark.SparkJobFailed(
            f"Spark ({options.master}) could not score {options.input_path}: "
            f"{spark.failure_summary(error)} (Spark's log above says more)"
        ) from error
    finally:
        if session is not None:
            session.stop()
    write_rejected(rejected, written + len(rejected), options.output_path)
    return len(rejected)


def run(config: LabConfig, environment: Mapping[str, str], options: ScoreOptions) -> int:
    """Score every readable row of the input with the champion (or the model named); write
    the scores and, beside them, the rows that could not be scored. Returns the rejected
    count."""
    input_path, output_path, model_uri = options.input_path, options.output_path, options.model_uri
    output_kind = file_kind(output_path)
    if output_path.resolve() == input_path.resolve():
        raise ScoringInputError(f"{output_path}: the scores would overwrite the listings")
    check_writable(output_path.parent)
    # Before MLflow is told where to track: it sets MLFLOW_TRACKING_URI in the environment.
    uri = model_uri or served_model_uri(config, environment)
    tracking = tracking_uri(environment, Path.cwd(), config.tracking.embedded_store_dir)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    if options.engine == "spark":
        return run_on_spark(config, environment, options, uri)
    listings, input_kind = readable_listings(input_path)
    categories = list(config.data_prep.price_categories)
    # The parallel walk gives the serial one's answers bit for bit, on every core.
    model = load_served_model(uri, categories, fall_back=False, parallel=True)
    started = time.perf_counter()
    scored, rejected = score_in_chunks(
        model, listings, config.scoring.chunk_size, input_kind == "csv"
    )
    if not scored:
        raise ScoringInputError(
            f"{input_path}: none of its {len(listings)} rows could be scored; the first: "
            f"{rejected[0].location}: {rejected[0].problem}"
        )
    table = pd.concat(scored, ignore_index=True)
    write_table(table, output_path, output_kind)
    seconds = time.perf_counter() - started
    log.info(
        "wrote %d scores by %s v%s to %s in %.1f s (%.0f listings/s)",
        *(len(table), model.name, model.version, output_path, seconds),
        len(listings) / max(seconds, 1e-9),
    )
    write_rejected(rejected, len(listings), output_path)
    return len(rejected)
