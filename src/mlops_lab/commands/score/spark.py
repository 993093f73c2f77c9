"""score on Apache Spark: the listings read, checked and scored where Spark runs, by the model's
own pyfunc through `mlflow.pyfunc.spark_udf`, and written as Parquet with the columns of
`mlops-lab score`. The rows outside the API's contract go to the same .rejected.csv."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from mlflow.models import Model as MlflowModel

from mlops_lab.commands.score.transform import (
    RejectedRow,
    ScoringInputError,
    columns_the_api_ignores,
    contract_problems,
    file_kind,
    is_inside_airbnb,
)
from mlops_lab.common.errors import UserError
from mlops_lab.common.files import replace_directory_atomically
from mlops_lab.kernel.contract import answer_column_names
from mlops_lab.kernel.listing import NUMERIC_FIELDS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

ROW_NUMBER = "row_number"
PROBLEM = "problem"


class SparkUnavailable(UserError, RuntimeError):
    """This machine cannot run Spark: PySpark or Java is missing."""


class SparkJobFailed(UserError, RuntimeError):
    """Spark could not run the job: a master out of reach, a file it cannot read, …"""


def spark_errors() -> tuple[type[Exception], ...]:
    """The exceptions by which PySpark reports a session or a job that failed."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JError)


def failure_summary(error: Exception) -> str:
    """A Spark failure in one line: the Java exception's own, else PySpark's first line, or
    the last line of a Python worker's traceback."""
    java_exception = getattr(error, "java_exception", None)
    text = str(java_exception if java_exception is not None else error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[-1] if "Traceback (most recent call last)" in text else lines[0]


def check_spark_can_run(environment: Mapping[str, str]) -> None:
    """SparkUnavailable, saying what to install, unless PySpark and a Java are here."""
    try:
        import pyspark  # noqa: F401
    except ImportError as error:
        raise SparkUnavailable(
            "--engine spark needs PySpark: pip install 'mlops-lab[spark]' (make setup has it)"
        ) from error
    java_home = environment.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").is_file()) and not shutil.which("java"):
        raise SparkUnavailable(
            "--engine spark needs Java 17 or later: on Debian or Ubuntu, "
            "apt-get install openjdk-17-jre-headless (or set JAVA_HOME)"
        )


def spark_session(master: str, environment: Mapping[str, str]) -> SparkSession:
    """A Spark session on `master`, its executors running this Python unless PYSPARK_PYTHON
    names another (as on a cluster whose machines keep the lab elsewhere)."""
    from pyspark.sql import SparkSession

    # PySpark reads the executors' Python from this process's environment.
    os.environ.setdefault("PYSPARK_PYTHON", environment.get("PYSPARK_PYTHON", sys.executable))
    session = (
        SparkSession.builder.master(master)
        .appName("mlops-lab score")
        # No _SUCCESS marker in the scores folder: it is complete once it is in place.
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    return session


def read_table(spark: SparkSession, path: Path, kind: str) -> DataFrame:
    """The file's rows: Parquet as typed, CSV as text for the contract to read."""
    from pyspark.sql import functions as F

    if not path.exists():
        raise ScoringInputError(f"{path} does not exist")
    location = str(path.resolve())
    if kind == "parquet":
        table = spark.read.parquet(location)
    else:
        table = spark.read.option("header", True).option("mode", "FAILFAST").csv(location)
    if is_inside_airbnb(table.columns):
        raise ScoringInputError(
            f"{path} is an Inside Airbnb listings file: on Spark, score the API's fields "
            "(mlops-lab score without --engine reads this file as it is)"
        )
    # Rows without an id are scored too, as by `mlops-lab score`.
    return table if "id" in table.columns else table.withColumn("id", F.lit(None).cast("string"))


def numbered(frame: DataFrame) -> DataFrame:
    """The rows with their position in the input (0 for the first), in the input's order."""
    from pyspark.sql.types import LongType, StructField, StructType

    schema = StructType([*frame.schema.fields, StructField(ROW_NUMBER, LongType(), False)])
    return frame.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1])).toDF(schema)


def with_problems(frame: DataFrame, csv: bool) -> DataFrame:
    """Each row with what breaks the API's contract in it (null if nothing does)."""
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([*frame.schema.fields, StructField(PROBLEM, StringType())])

    def check(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            fields = batch.drop(columns=[ROW_NUMBER])
            yield batch.assign(**{PROBLEM: contract_problems(fields, csv)})

    return frame.mapInPandas(check, schema)


def location_column(csv: bool) -> Column:
    """Where each row is, as `mlops-lab score` says it: a CSV's line, else a row number."""
    from pyspark.sql import functions as F

    if csv:
        return F.concat(F.lit("line "), (F.col(ROW_NUMBER) + 2).cast("string"))
    return F.concat(F.lit("row "), (F.col(ROW_NUMBER) + 1).cast("string"))


def model_inputs(frame: DataFrame, input_names: list[str]) -> list[Column]:
    """The model signature's input columns in its order, numbers as doubles; a field the rows
    lack as nulls of its type (spark_udf would fill a text field with NaN, which MLflow's
    schema check refuses); the id as text."""
    from pyspark.sql import functions as F

    columns = []
    for name in input_names:
        value = F.col(name) if name in frame.columns else F.lit(None)
        columns.append(value.cast("double" if name in NUMERIC_FIELDS else "string").alias(name))
    return columns


def scores_of(
    frame: DataFrame, model_uri: str, identity: tuple[str, str], csv: bool, categories: list[str]
) -> DataFrame:
    """The valid rows' scores, in `mlops-lab score`'s columns and the input's order."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    model = MlflowModel.load(model_uri)
    answer = mlflow.pyfunc.spark_udf(
        frame.sparkSession,
        model_uri,
        result_type=", ".join(
            f"{name} {'string' if name == 'price_category' else 'double'}"
            for name in answer_column_names(categories)
        ),
        env_manager="local",
    )
    valid = frame.filter(F.col(PROBLEM).isNull())
    answered = valid.withColumn(
        "answer", answer(*model_inputs(valid, model.signature.inputs.input_names()))
    )
    return answered.select(
        location_column(csv).alias("location"),
        F.col("id").cast("string").alias("id"),
        *(F.col(f"answer.{name}").alias(name) for name in answer_column_names(categories)),
        F.lit(identity[0]).alias("model_name"),
        F.lit(identity[1]).alias("model_version"),
    )


def rejected_rows(frame: DataFrame, csv: bool) -> list[RejectedRow]:
    """The rows outside the contract, where they are and why, in the input's order."""
    from pyspark.sql import functions as F

    refused = (
        frame.filter(F.col(PROBLEM).isNotNull())
        .select(
            location_column(csv).alias("location"),
            F.col("id").cast("string").alias("id"),
            F.col(PROBLEM),
            F.col(ROW_NUMBER),
        )
        .orderBy(ROW_NUMBER)
        .toPandas()
    )
    return [RejectedRow(row.location, row.id, row.problem) for row in refused.itertuples()]


def score_on_spark(
    spark: SparkSession,
    paths: tuple[Path, Path],
    model: tuple[str, str, str],
    categories: list[str],
) -> tuple[int, list[RejectedRow]]:
    """Score the listings at paths[0] with model (its URI, name and version) on Spark, write
    the scores as a Parquet folder at paths[1]; the count written and the rows refused."""
    input_path, output_path = paths
    csv = file_kind(input_path) == "csv"
    table = read_table(spark, input_path, "csv" if csv else "parquet")
    ignored = columns_the_api_ignores(table.columns)
    if ignored:
        log.warning("ignoring columns that are no field of the API: %s", ", ".join(ignored))
        table = table.drop(*ignored)
    started = time.perf_counter()
    listings = numbered(table)
    # Parts of equal size in the input's order, one per core at least, so every core scores.
    parallelism = spark.sparkContext.defaultParallelism
    checked = with_problems(listings.repartitionByRange(parallelism, ROW_NUMBER), csv).cache()
    total = checked.count()
    if total == 0:
        raise ScoringInputError(f"{input_path} has no rows to score")
    log.info("read %d listings from %s into %d parts", total, input_path, parallelism)
    rejected = rejected_rows(checked, csv)
    if len(rejected) == total:
        raise ScoringInputError(
            f"{input_path}: none of its {total} rows could be scored; the first: "
            f"{rejected[0].location}: {rejected[0].problem}"
        )
    scores = scores_of(checked, model[0], model[1:], csv, categories)
    replace_directory_atomically(output_path, lambda folder: scores.write.parquet(str(folder)))
    seconds = time.perf_counter() - started
    log.info(
        "wrote %d scores by %s v%s to %s on Spark in %.1f s (%.0f listings/s)",
        *(total - len(rejected), model[1], model[2], output_path, seconds),
        total / max(seconds, 1e-9),
    )
    return total - len(rejected), rejected
