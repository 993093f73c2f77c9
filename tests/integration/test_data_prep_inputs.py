"""data_prep on real files: a full Inside Airbnb scrape works; bad files and bad settings fail
before any model is trained, cleanly; a stage stopped mid-run leaves no run RUNNING."""

import gzip
import hashlib
import json
import shutil
import signal
import subprocess
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from projects import LabProject, small_run
from waiting import poll_until

from mlops_lab.common.tables import read_parquet

pytestmark = pytest.mark.integration

# Inside Airbnb's listings.csv columns (74), in their order.
FULL_SCRAPE_COLUMNS = (
    """id listing_url scrape_id last_scraped name description neighborhood_overview
picture_url host_id host_url host_name host_since host_location host_about host_response_time
host_response_rate host_acceptance_rate host_is_superhost host_thumbnail_url host_picture_url
host_neighbourhood host_listings_count host_total_listings_count host_verifications
host_has_profile_pic host_identity_verified neighbourhood neighbourhood_cleansed
neighbourhood_group_cleansed latitude longitude property_type room_type accommodates bathrooms
bathrooms_text bedrooms beds amenities price minimum_nights maximum_nights minimum_minimum_nights
maximum_minimum_nights minimum_maximum_nights maximum_maximum_nights minimum_nights_avg_ntm
maximum_nights_avg_ntm calendar_updated has_availability availability_30 availability_60
availability_90 availability_365 calendar_last_scraped number_of_reviews number_of_reviews_ltm
number_of_reviews_l30d first_review last_review review_scores_rating review_scores_accuracy
review_scores_cleanliness review_scores_checkin review_scores_communication
review_scores_location review_scores_value license instant_bookable
calculated_host_listings_count calculated_host_listings_count_entire_homes
calculated_host_listings_count_private_rooms calculated_host_listings_count_shared_rooms
reviews_per_month""".split()  # noqa: SIM905
)

OUTPUTS = ("data/prepared/listings.parquet", "metrics/data_prep.json")


def digests(project) -> dict[str, str]:
    return {
        name: hashlib.sha256((project.path / name).read_bytes()).hexdigest() for name in OUTPUTS
    }


@pytest.fixture(scope="module")
def prepared_project(tmp_path_factory: pytest.TempPathFactory) -> LabProject:
    """A small lab whose data_prep ran once: each bad input below is tried on it in turn."""
    project = LabProject(tmp_path_factory.mktemp("prepared") / "lab")
    project.edit_config(small_run)
    project.commit("small run")
    result = project.run(["dvc", "repro", "data_prep"])
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture()
def prepared(prepared_project: LabProject) -> Iterator[LabProject]:
    """The prepared lab, its config and raw files put back as they were after the test."""
    config = (prepared_project.path / "config.yaml").read_text()
    raw_files = set((prepared_project.path / "data/raw").iterdir())
    yield prepared_project
    (prepared_project.path / "config.yaml").write_text(config)
    for path in set((prepared_project.path / "data/raw").iterdir()) - raw_files:
        path.unlink()


def use_raw_file(project, name: str) -> None:
    def point(config):
        config["data"]["raw_path"] = f"data/raw/{name}"

    project.edit_config(point)


def full_scrape(project) -> pd.DataFrame:
    """The shipped rows in a full scrape's shape: 74 columns, gaps, big prices, free text."""
    shipped = pd.read_csv(project.path / "data/raw/listings.csv.gz", dtype=str).head(400)
    full = pd.DataFrame({name: "" for name in FULL_SCRAPE_COLUMNS}, index=shipped.index)
    for name in shipped.columns:
        full[name] = shipped[name]
    full["description"] = 'Sunny loft, "quiet", near the park,\nwith a second line'
    full["neighbourhood_cleansed"] = "Williamsburg"
    full.loc[0:9, "price"] = ["$1,250.00", "$10,000.00", "$1,000.00"] + ["$2,500.00"] * 7
    full.loc[10:14, "bathrooms_text"] = [
        "Half-bath",
        "Shared half-bath",
        "1 private bath",
        "2 shared baths",
        "",
    ]
    full.loc[15:19, "bedrooms"] = ""
    full.loc[20:24, "amenities"] = '{TV,"Air conditioning",Wifi,"Long term stays allowed"}'
    full.loc[25, "amenities"] = json.dumps(
        ["HDTV with Netflix", "Wifi – 300 Mbps", "Elevator", *[f"Amenity {i}" for i in range(40)]]
    )
    full.loc[26, "price"] = ""
    full.loc[27, "neighbourhood_group_cleansed"] = ""
    return full


def test_a_full_inside_airbnb_scrape_needs_only_its_path_in_config(small_project):
    frame = full_scrape(small_project)
    with gzip.open(small_project.path / "data/raw/full.csv.gz", "wt", newline="") as stream:
        frame.to_csv(stream, index=False)
    use_raw_file(small_project, "full.csv.gz")
    result = small_project.run(["mlops-lab", "data-prep"])
    assert result.returncode == 0, result.stderr
    metrics = json.loads((small_project.path / "metrics/data_prep.json").read_text())
    assert metrics["rows_in"] == 400
    assert metrics["dropped_by_reason"] == {
        "borough_unknown": 1,
        "price_missing_or_unreadable": 1,
    }
    prepared = read_parquet(small_project.path / "data/prepared/listings.parquet")
    big = prepared[prepared["price"] >= 1000]
    assert len(big) == 10
    assert set(big["price_category"]) == {"lux"}
    by_id = prepared.set_index("id")
    ids = frame["id"].astype(int)
    assert by_id.loc[ids[10], "bathrooms"] == 0.5
    assert by_id.loc[ids[11], "shared_bathroom"] == 1.0
    assert by_id.loc[ids[12], "bathrooms"] == 1.0
    assert np.isnan(by_id.loc[ids[14], "bathrooms"])
    assert np.isnan(by_id.loc[ids[15], "bedrooms"])
    assert by_id.loc[ids[20], ["tv", "air_conditioning", "wifi"]].tolist() == [1, 1, 1]
    assert by_id.loc[ids[25], "amenity_count"] == 43
    assert by_id.loc[ids[25], ["tv", "wifi", "elevator"]].tolist() == [1, 1, 1]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("no_price.csv", None, "missing column: price"),
        ("binary.csv", bytes(range(256)) * 64, "not a readable CSV: it holds binary data"),
        ("not_gzip.csv.gz", b"id,price\n1,$5\n", "not a readable CSV"),
        ("empty.csv", b"", "is empty"),
        ("header_only.csv", "header only", "it has a header but no listings"),
        ("prices.csv", "unreadable prices", "500 of its 500 rows cannot be used (100%"),
        ("repeated.csv", "a repeated id", "listing ids must be unique"),
        # dvc checks its dependencies first and names the missing one.
        ("nowhere.csv", "absent", "No such file or directory"),
    ],
)
def test_a_bad_raw_file_stops_dvc_repro_and_keeps_earlier_outputs(prepared, name, content, message):
    before = digests(prepared)

    path = prepared.path / "data/raw" / name
    shipped = pd.read_csv(prepared.path / "data/raw/listings.csv.gz", dtype=str).head(500)
    if content is None:
        shipped.drop(columns=["price"]).head(50).to_csv(path, index=False)
    elif content == "header only":
        shipped.head(0).to_csv(path, index=False)
    elif content == "unreadable prices":
        shipped.assign(price="call us").to_csv(path, index=False)
    elif content == "a repeated id":
        shipped.assign(id=shipped["id"].where(shipped.index != 7, shipped["id"][3])).to_csv(
            path, index=False
        )
    elif content != "absent":
        path.write_bytes(content)
    use_raw_file(prepared, name)
    result = prepared.run(["dvc", "repro", "data_prep"])

    assert result.returncode != 0
    assert message in result.stderr
    assert f"data/raw/{name}" in result.stderr
    assert "Traceback" not in result.stderr
    assert digests(prepared) == before
    leftovers = [p.name for p in (prepared.path / "data/prepared").iterdir()]
    assert leftovers == ["listings.parquet"] or sorted(leftovers) == [
        ".gitignore",
        "listings.parquet",
    ]


def test_the_stage_command_names_a_missing_raw_file(small_project):
    use_raw_file(small_project, "nowhere.csv")
    result = small_project.run(["mlops-lab", "data-prep"])
    assert result.returncode == 1
    assert "raw data file data/raw/nowhere.csv does not exist" in result.stderr


def test_a_tracking_server_that_is_down_is_named_before_any_listing_is_read(small_project):
    uri = "http://127.0.0.1:9"
    result = small_project.run(["mlops-lab", "data-prep"], {"MLFLOW_TRACKING_URI": uri})
    assert result.returncode == 1
    assert f"MLflow tracking server at {uri} is not reachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert " columns from " not in result.stderr
    assert not (small_project.path / "data/prepared/listings.parquet").exists()


def test_running_twice_with_the_same_inputs_gives_identical_metrics(small_project):
    files = ("metrics/training.json", "metrics/candidates.csv", "metrics/data_prep.json")
    assert small_project.run(["mlops-lab", "data-prep"]).returncode == 0
    first = small_project.run(["mlops-lab", "training"])
    assert first.returncode == 0, first.stderr
    before = {name: (small_project.path / name).read_bytes() for name in files}
    assert small_project.run(["mlops-lab", "data-prep"]).returncode == 0
    # From scratch: without the candidates' cache every candidate is fitted again.
    shutil.rmtree(small_project.path / "models" / "candidates")
    second = small_project.run(["mlops-lab", "training"])
    assert second.returncode == 0, second.stderr
    after = {name: (small_project.path / name).read_bytes() for name in files}
    assert after == before
    assert "reused" not in second.stderr
    # The same winner, trained under the same key, is not registered a second time.
    assert "is unchanged since it was registered as airbnb-price-category v1: kept" in (
        second.stderr
    )
    assert "registered as airbnb-price-category v1" in second.stdout


def last_candidate_typo(config: dict) -> None:
    """A misspelt parameter in the last candidate that has parameters of its own."""
    candidates = config["training"]["candidates"].values()
    last = [candidate for candidate in candidates if candidate.get("params")]
    last[-1]["params"]["n_estimator"] = 100


def repeated_edge(config: dict) -> None:
    config["data_prep"]["price_bin_edges"] = [10, 90, 90, 400]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (last_candidate_typo, "unexpected keyword argument 'n_estimator'"),
        (repeated_edge, "price_bin_edges must be strictly increasing"),
    ],
)
def test_a_bad_setting_stops_the_pipeline_before_any_model_is_trained(prepared, change, message):
    before = digests(prepared)
    prepared.edit_config(change)
    result = prepared.run(["dvc", "repro"])
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "cross-validating" not in result.stdout + result.stderr
    assert digests(prepared) == before


def test_a_stage_stopped_mid_run_leaves_its_runs_failed_not_running(small_project):
    assert small_project.run(["dvc", "repro", "data_prep"]).returncode == 0
    training = subprocess.Popen(
        ["mlops-lab", "training"],
        cwd=small_project.path,
        env=small_project.environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = small_project.embedded_client()

    def started_candidates() -> list:
        if training.poll() is not None:
            pytest.fail(
                f"training exited {training.returncode} before any candidate run: "
                f"{training.stderr.read()[-3000:]}"
            )
        return candidate_runs(client)

    try:
        # No candidate run in time fails the test: a stop sent before any would prove nothing.
        poll_until(started_candidates, 120, "the training stage's first candidate run")
        training.send_signal(signal.SIGTERM)
        # Read as it goes: a stage that fills the pipe while it unwinds would never exit.
        _, stderr = training.communicate(timeout=120)
    finally:
        if training.poll() is None:
            training.kill()
            training.communicate()
    assert training.returncode != 0, stderr[-3000:]
    experiment = client.get_experiment_by_name("airbnb-price-category")
    statuses = {
        run.info.run_name: run.info.status for run in client.search_runs([experiment.experiment_id])
    }
    assert statuses["training"] == "FAILED", statuses
    assert "RUNNING" not in statuses.values(), statuses


def candidate_runs(client: MlflowClient) -> list:
    """The candidate runs the training stage has started in the embedded store so far."""
    experiment = client.get_experiment_by_name("airbnb-price-category")
    if experiment is None:
        return []
    return client.search_runs(
        [experiment.experiment_id], filter_string="tags.`mlops_lab.candidate` != ''"
    )
