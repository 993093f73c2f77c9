"""`mlops-lab score` on real files with the trained lab's champion: the service's answers for
the same listings, bad rows set aside with where they are and why, bad files refused."""

import math
import shutil
import signal
import subprocess

import pandas as pd
import pytest
import requests
from projects import VENV_BIN, challenge_payload
from waiting import poll_until, skip_or_fail

from mlops_lab.common.tables import read_parquet
from mlops_lab.kernel.inside_airbnb import parse_listings, read_raw_listings

pytestmark = pytest.mark.integration

CHALLENGE = challenge_payload()


def as_sent(row: dict) -> dict:
    """A parsed listing as a caller sends it: its id, its fields, no empty ones, no price."""
    return {
        name: value
        for name, value in row.items()
        if name != "price" and not (isinstance(value, float) and math.isnan(value))
    }


def test_scoring_the_shipped_raw_file_gives_the_services_answers(trained_lab, local_service):
    raw_path = trained_lab.path / "data" / "raw" / "listings.csv.gz"
    result = trained_lab.run(["mlops-lab", "score", str(raw_path), "scores.parquet"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "listings/s" in result.stderr
    scores = read_parquet(trained_lab.path / "scores.parquet")
    raw = read_raw_listings(raw_path)
    assert len(scores) == len(raw)
    assert set(scores["model_version"]) == {"1"}

    sample = parse_listings(raw).sample(n=300, random_state=3)
    sample["id"] = raw.loc[sample.index, "id"]
    sent = [as_sent(row) for row in sample.to_dict("records")]
    answers = requests.post(f"{local_service.url}/predict", json=sent, timeout=60).json()
    scored = scores.set_index("id").loc[[str(row["id"]) for row in sent]]
    assert [answer["price_category"] for answer in answers["predictions"]] == (
        scored["price_category"].tolist()
    )
    for category in ("low", "mid", "high", "lux"):
        assert [answer["probabilities"][category] for answer in answers["predictions"]] == (
            scored[f"probability_{category}"].tolist()
        )


def test_bad_rows_are_set_aside_with_their_line_and_the_rest_scored(trained_lab):
    rows = pd.DataFrame(
        [
            {**CHALLENGE, "id": 1},
            {**CHALLENGE, "id": 2, "bedrooms": "two"},
            {**CHALLENGE, "id": 3, "neighbourhood": "Atlantis"},
            {**CHALLENGE, "id": 4, "wifi": 1},
        ]
    ).assign(price=[80, 90, 100, 110])
    rows.to_csv(trained_lab.path / "listings_to_score.csv", index=False)
    result = trained_lab.run(["mlops-lab", "score", "listings_to_score.csv", "scores.csv"])
    assert result.returncode == 3, result.stderr[-3000:]
    assert "ignoring columns that are no field of the API: price" in result.stderr
    assert "line 3 (id 2) not scored: bedrooms:" in result.stderr
    scores = pd.read_csv(trained_lab.path / "scores.csv")
    assert scores["id"].tolist() == [1, 4]
    assert scores["location"].tolist() == ["line 2", "line 5"]
    rejected = pd.read_csv(trained_lab.path / "scores.rejected.csv")
    assert rejected["location"].tolist() == ["line 3", "line 4"]
    assert rejected["problem"].str.startswith(("bedrooms:", "neighbourhood:")).all()


@pytest.mark.parametrize(
    ("source", "content", "message"),
    [
        ("absent.csv", None, "absent.csv does not exist"),
        ("listings.xlsx", b"PK", "listings.xlsx: a file to score or a scores file is"),
        ("empty.csv", b"", "empty.csv is empty"),
        ("broken.parquet", b"not parquet", "broken.parquet cannot be read"),
        ("header.csv", b"id,accommodates,room_type\n", "header.csv has no rows to score"),
        (
            "cut.csv.gz",
            "half of the shipped raw file",
            "cut.csv.gz is truncated",
        ),
    ],
)
def test_a_file_that_cannot_be_scored_is_refused_and_nothing_is_written(
    trained_lab, source, content, message
):
    if content == "half of the shipped raw file":
        whole = (trained_lab.path / "data" / "raw" / "listings.csv.gz").read_bytes()
        content = whole[: len(whole) // 2]
    if content is not None:
        (trained_lab.path / source).write_bytes(content)
    result = trained_lab.run(["mlops-lab", "score", source, "refused.csv"])
    assert result.returncode == 1
    assert f"error: {message}" in result.stderr
    # Said once: no log line repeats it.
    assert result.stderr.count(message) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not (trained_lab.path / "refused.csv").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_scoring(trained_lab):
    if shutil.which("chattr") is None:
        skip_or_fail("chattr is missing: it makes the folder unwritable, even to root")
    folder = trained_lab.path / "locked-scores"
    folder.mkdir(exist_ok=True)
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        skip_or_fail(f"chattr +i is refused here: {made.stderr.strip()}")
    try:
        source = str(trained_lab.path / "data" / "raw" / "listings.csv.gz")
        result = trained_lab.run(["mlops-lab", "score", source, "locked-scores/scores.csv"])
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert result.returncode == 1
    assert "error: " in result.stderr and "cannot be written there" in result.stderr
    assert "scoring" not in result.stderr and "read " not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert list(folder.iterdir()) == []


def test_sigterm_while_writing_leaves_no_output_and_no_temporary_file(trained_lab):
    rows = pd.DataFrame([{**CHALLENGE, "id": n} for n in range(200_000)])
    rows.to_csv(trained_lab.path / "many.csv", index=False)
    folder = trained_lab.path / "stopped-scores"
    folder.mkdir(exist_ok=True)
    command = [str(VENV_BIN / "mlops-lab"), "score", "many.csv", "stopped-scores/scores.csv.gz"]
    process = subprocess.Popen(
        command, cwd=trained_lab.path, env=trained_lab.environment(), stderr=subprocess.PIPE
    )
    poll_until(
        lambda: process.poll() is not None or list(folder.glob(".scores.csv.gz.*.tmp")),
        300,
        "the scores' temporary file",
    )
    assert process.poll() is None, "it finished before it was seen writing"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(folder.iterdir()) == []
