"""data_prep: raw Inside Airbnb listings file → validated training table + drop counts."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pandas as pd

from mlops_lab.common.files import atomic_path, write_json_atomically
from mlops_lab.common.tables import read_parquet
from mlops_lab.evaluation.prepared import HARVESTED_COLUMNS
from mlops_lab.kernel.inside_airbnb import read_raw_listings
from mlops_lab.stages.context import StageContext
from mlops_lab.stages.data_prep.transform import (
    DataQualityError,
    check_quality,
    check_unique_ids,
    prepare_listings,
    sample_listings,
    summarize,
    with_harvested,
)
from mlops_lab.tracking.runs import PREPARED_DATA_TAG, sha256_file, stage_run

log = logging.getLogger(__name__)


def read_harvested(path: Path) -> pd.DataFrame:
    """The listings `mlops-lab harvest` labelled, or none before the first harvest."""
    if not path.is_file():
        return pd.DataFrame(columns=HARVESTED_COLUMNS).astype({"id": "int64"})
    harvested = read_parquet(path)
    log.info("read %d listings labelled by feedback from %s", len(harvested), path)
    return harvested


def run(context: StageContext) -> None:
    """Read, validate and prepare the raw listings; write the table and its metrics."""
    config = context.config
    raw_path = config.data.raw_path
    with stage_run(context.tracking, context.lineage, "data_prep"):
        raw = read_raw_listings(raw_path)
        log.info("read %d rows × %d columns from %s", len(raw), raw.shape[1], raw_path)
        prepared, drops = prepare_listings(
            raw, config.data_prep.price_bin_edges, config.data_prep.price_categories
        )
        try:
            check_unique_ids(pd.to_numeric(raw["id"], errors="coerce"))
            check_quality(
                len(raw),
                len(prepared),
                drops,
                config.data_prep.minimum_rows,
                config.data_prep.maximum_dropped_share,
            )
        except DataQualityError as error:
            raise DataQualityError(f"raw data file {raw_path}: {error}") from error
        prepared = sample_listings(
            prepared, config.data_prep.sample_rows, config.data_prep.sample_seed
        )
        prepared = with_harvested(prepared, read_harvested(config.data.harvested_path))
        metrics = summarize(len(raw), prepared, drops, config.data_prep.price_categories)
        log.info(
            "kept %d of %d rows; dropped %s",
            metrics["rows_out"],
            metrics["rows_in"],
            drops or "none",
        )

        with atomic_path(config.data.prepared_path) as temporary:
            prepared.to_parquet(temporary, index=False)
        write_json_atomically(config.data_prep.metrics_path, metrics)

        mlflow.log_params(
            {
                "raw_path": str(raw_path),
                "sample_rows": config.data_prep.sample_rows,
                "price_bin_edges": config.data_prep.price_bin_edges,
                "price_categories": config.data_prep.price_categories,
            }
        )
        mlflow.log_metrics(
            {
                "rows_in": metrics["rows_in"],
                "rows_out": metrics["rows_out"],
                "rows_dropped": metrics["rows_dropped"],
                **{f"dropped.{reason}": count for reason, count in drops.items()},
                **{
                    f"rows.{category}": count
                    for category, count in metrics["rows_by_price_category"].items()
                },
            }
        )
        mlflow.set_tag(PREPARED_DATA_TAG, sha256_file(config.data.prepared_path))
        mlflow.log_artifact(str(config.data_prep.metrics_path))
