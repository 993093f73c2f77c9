"""`mlops-lab score --engine spark`: the shipped listings scored on a standalone Spark cluster (a
master and two one-core workers, processes of the PySpark package on this machine) through
MLflow's spark_udf, with exactly the answers of `mlops-lab score`; a machine without Java is
told what to install."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from projects import VENV_BIN, LabProject, challenge_payload
from spark_cluster import SparkCluster
from waiting import read_until, skip_or_fail

from mlops_lab.cli import SOME_ROWS_NOT_SCORED
from mlops_lab.commands.score.transform import api_fields_of_scrape
from mlops_lab.common.tables import read_parquet
from mlops_lab.kernel.inside_airbnb import read_raw_listings

pytestmark = pytest.mark.integration

LOOPBACK = {"SPARK_LOCAL_IP": "127.0.0.1"}


@pytest.fixture()
def java() -> None:
    """Spark runs on Java: without it the tier skips, saying what to install (in CI: fails)."""
    if shutil.which("java") is None:
        skip_or_fail("Spark tier: no java here (apt-get install openjdk-17-jre-headless)")


def shipped_listings(lab: LabProject, folder: Path) -> Path:
    """The shipped raw file's listings as the API's fields, in Parquet; one breaks the contract."""
    listings = api_fields_of_scrape(
        read_raw_listings(lab.path / "data" / "raw" / "listings.csv.gz")
    )
    listings.loc[listings.index[7], "bathrooms"] = 1.25
    path = folder / "listings.parquet"
    listings.to_parquet(path, index=False)
    return path


def test_a_two_worker_spark_cluster_scores_the_shipped_listings_as_mlops_lab_score_does(
    java, trained_lab, tmp_path
):
    listings = shipped_listings(trained_lab, tmp_path)
    ours = trained_lab.run(["mlops-lab", "score", str(listings), str(tmp_path / "ours.parquet")])
    assert ours.returncode == SOME_ROWS_NOT_SCORED, ours.stderr[-3000:]

    with SparkCluster(tmp_path / "spark", workers=2) as cluster:
        scoring = ["mlops-lab", "score", "--engine", "spark", "--master", cluster.url]
        theirs = trained_lab.run(
            [*scoring, str(listings), str(tmp_path / "spark.parquet")], LOOPBACK
        )
        # The master files the application as completed once the driver has said goodbye.
        status = read_until(
            cluster.status, lambda seen: seen["completedapps"], 30, "the finished application"
        )
    assert theirs.returncode == SOME_ROWS_NOT_SCORED, theirs.stderr[-3000:]
    assert "Traceback" not in theirs.stderr
    # It ran on the cluster: one application, an executor on each one-core worker.
    assert [application["name"] for application in status["completedapps"]] == ["mlops-lab score"]
    executors = list((tmp_path / "spark" / "work").glob("app-*/*"))
    assert len(executors) == 2, executors

    expected, scored = read_parquet(tmp_path / "ours.parquet"), read_parquet(
        tmp_path / "spark.parquet"
    )
    assert list(scored.columns) == list(expected.columns)
    assert len(scored) == len(expected) == len(read_parquet(listings)) - 1
    exact = ["location", "id", "price_category", "model_name", "model_version"]
    pd.testing.assert_frame_equal(scored[exact], expected[exact])
    probabilities = [name for name in expected.columns if name.startswith("probability_")]
    np.testing.assert_allclose(scored[probabilities], expected[probabilities], rtol=0, atol=1e-12)
    # The row outside the contract is set aside as by `mlops-lab score`, where it is and why.
    rejected = (tmp_path / "spark.rejected.csv").read_text()
    assert rejected == (tmp_path / "ours.rejected.csv").read_text()
    assert "row 8," in rejected and "bathrooms: Input should be a multiple of 0.5" in rejected


def test_without_java_spark_scoring_says_what_to_install(trained_lab, tmp_path):
    listings = tmp_path / "listings.parquet"
    pd.DataFrame([challenge_payload()]).to_parquet(listings, index=False)
    scoring = [str(VENV_BIN / "mlops-lab"), "score", "--engine", "spark"]
    # Nothing on PATH but the lab's environment: no java there, and no JAVA_HOME.
    result = trained_lab.run(
        [*scoring, str(listings), str(tmp_path / "scores.parquet")],
        {"PATH": str(VENV_BIN), "JAVA_HOME": ""},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --engine spark needs Java 17 or later: on Debian or Ubuntu, "
        "apt-get install openjdk-17-jre-headless (or set JAVA_HOME)"
    )
    assert not (tmp_path / "scores.parquet").exists()


def test_a_file_spark_cannot_read_fails_in_one_line_and_writes_nothing(java, trained_lab, tmp_path):
    listings = tmp_path / "listings.parquet"
    listings.write_text("no Parquet at all")
    scoring = ["mlops-lab", "score", "--engine", "spark", "--master", "local[1]"]
    result = trained_lab.run([*scoring, str(listings), str(tmp_path / "scores.parquet")], LOOPBACK)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: Spark (local[1]) could not score {listings}: ")
    assert "CANNOT_READ_FILE_FOOTER" in error, error
    assert list(tmp_path.iterdir()) == [listings]
