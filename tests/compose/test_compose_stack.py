"""The README's Docker path, command for command: build, up, dvc repro in the lab, the MLflow
UI's API on localhost:5000, a prediction from the served champion, who may do what on MLflow
and PostgreSQL, a stop that drains, the tracking server killed mid-run, and down/up keeping
everything. Then the same stack, on its own data, on a one-node Docker Swarm: replicas behind
the front door that follow a new champion, take a rolling update and lose one replica. The
tests share one stack and run in this order (one file, so one pytest worker: two stacks on one
engine would fight over its ports)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml
from browser import devtools
from calls import Callers, metric_sum, metric_text_samples, prediction_callers
from hostile import (
    Crowd,
    chunked,
    explanations_while_one_is_held,
    send_until_answered,
    status_and_json,
)
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from projects import challenge_payload, free_port, small_run
from receiver import JsonReceiver
from waiting import poll_until, read_until

from mlops_lab.kernel.contract import probability_column
from mlops_lab.tracking.registry import GATE_PASSED, GATE_TAG

pytestmark = pytest.mark.compose

MLFLOW = "http://localhost:5000"
SERVICE = "http://localhost:8000"
MODEL = "airbnb-price-category"
CHALLENGE = challenge_payload()


def client() -> MlflowClient:
    return MlflowClient(MLFLOW)


def pipeline_runs() -> list:
    experiment = client().get_experiment_by_name(MODEL)
    return client().search_runs(
        [experiment.experiment_id], filter_string="tags.`mlops_lab.stage` = 'pipeline'"
    )


def test_the_compose_file_is_valid_and_names_what_is_missing(lab):
    result = lab.run("docker", "compose", "config", "--quiet")
    assert result.stderr.strip() == "", result.stderr
    missing = lab.run("docker", "compose", "--env-file", "/dev/null", "config", check=False)
    assert missing.returncode != 0
    assert "copy .env.example to .env" in missing.stderr


def test_up_then_dvc_repro_in_the_lab_tracks_and_registers_on_the_server(lab):
    lab.timed("build", "docker", "compose", "build", timeout=1800)
    lab.timed("up_to_healthy", "docker", "compose", "up", "-d", "--build", "--wait")
    lab.timed("dvc_repro", "docker", "compose", "exec", "-T", "ds_environment", "dvc", "repro")
    assert requests.get(f"{MLFLOW}/health", timeout=5).status_code == 200
    head = lab.run("git", "-c", "safe.directory=*", "rev-parse", "HEAD").stdout.strip()
    runs = pipeline_runs()
    assert len(runs) == 1
    assert runs[0].data.tags["mlops_lab.git_commit"] == head
    champion = client().get_model_version_by_alias(MODEL, "champion")
    assert champion.version == "1"
    artifacts = [item.path for item in client().list_artifacts(champion.run_id)]
    assert "explainability" in artifacts


def test_dvc_push_stores_the_data_versions_on_the_lab_remote(lab):
    lab.run("docker", "compose", "exec", "-T", "ds_environment", "dvc", "push")
    status = lab.run("docker", "compose", "exec", "-T", "ds_environment", "dvc", "status", "-c")
    assert "in sync" in status.stdout


def test_the_prediction_service_serves_the_champion_to_the_host(lab):
    lab.timed(
        "serve_to_healthy",
        "docker",
        "compose",
        "--profile",
        "serve",
        "up",
        "-d",
        "--build",
        "--wait",
    )
    response = requests.post(f"{SERVICE}/predict", json=CHALLENGE, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["price_category"] in {"low", "mid", "high", "lux"}
    assert (body["model_name"], body["model_version"]) == (MODEL, "1")
    # The answer is in the prediction log, in its own database of the stack's PostgreSQL.
    settings = lab.settings()
    count = (
        *("docker", "compose", "exec", "-T", "-e"),
        f"PGPASSWORD={settings['PREDICTIONS_DB_PASSWORD']}",
        *("postgres", "psql", "--host", "127.0.0.1", "--no-psqlrc", "--tuples-only"),
        *(
            "--username",
            settings["PREDICTIONS_DB_USER"],
            "--dbname",
            settings["PREDICTIONS_DB_NAME"],
        ),
        *("--command", "SELECT count(*) FROM predictions"),
    )
    read_until(
        lambda: lab.run(*count, check=False),
        lambda logged: logged.stdout.strip() == "1",
        30,
        "the prediction in the stack's log",
    )


def test_the_service_is_reached_only_through_its_front_door(lab):
    published = lab.run("docker", "compose", "port", "prediction_service", "8000", check=False)
    # Compose prints ":0" for a port the service does not publish.
    assert published.returncode != 0 or published.stdout.strip() in ("", ":0"), published.stdout
    response = requests.get(f"{SERVICE}/ready", timeout=10, headers={"X-Request-ID": "door-1"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "door-1"
    # The front door's log line for it is JSON with the request id.
    logs = lab.run("docker", "compose", "logs", "--no-color", "front_door").stdout
    lines = [line.split("|", 1)[-1].strip() for line in logs.splitlines() if "door-1" in line]
    assert lines and json.loads(lines[-1])["request_id"] == "door-1", logs[-2000:]


# MLflow's own serving image of the stack's champion, built as MLflow's docs say. The local
# environment manager: the default (virtualenv) bases the image on ubuntu and downloads a Python.
BUILT_IMAGE = "mlops-lab-mlflow-built:latest"


def answers(url: str) -> bool:
    """Whether `url` answers 200 now."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_mlflows_own_image_of_the_champion_answers_as_the_service(lab, tmp_path):
    champion = client().get_model_version_by_alias(MODEL, "champion")
    files = client().get_model_version_download_uri(MODEL, champion.version)
    python_environment = download_artifacts(
        f"{files}/python_env.yaml", dst_path=str(tmp_path), tracking_uri=MLFLOW
    )
    python = yaml.safe_load(Path(python_environment).read_text())["python"]
    # The image starts FROM python:<the model's Python>-slim, which a registry would give. The
    # sandbox's stand-in takes its name, as the stand-ins take the official names.
    base = f"python:{python}-slim"
    if lab.run("docker", "image", "inspect", base, check=False).returncode != 0:
        lab.run("docker", "tag", "python:3.11-slim", base)
    lab.timed(
        "mlflow_build_docker",
        *(str(Path(sys.executable).with_name("mlflow")), "models", "build-docker"),
        *("-m", f"models:/{MODEL}@champion", "-n", BUILT_IMAGE, "--env-manager", "local"),
        timeout=1800,
        environment={"MLFLOW_TRACKING_URI": MLFLOW},
    )
    port = free_port()
    container = lab.run(
        *("docker", "run", "--detach", "--rm", "--publish", f"127.0.0.1:{port}:8080"),
        BUILT_IMAGE,
    ).stdout.strip()
    try:
        poll_until(
            lambda: answers(f"http://127.0.0.1:{port}/ping"),
            120,
            "MLflow's image to answer /ping",
            lambda: lab.run("docker", "logs", container, check=False).stderr[-3000:],
        )
        built = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_records": [CHALLENGE]},
            timeout=60,
        )
    finally:
        lab.run("docker", "rm", "--force", container, check=False)
    assert built.status_code == 200, built.text
    served = requests.post(f"{SERVICE}/predict", json=CHALLENGE, timeout=30).json()
    [answer] = built.json()["predictions"]
    assert answer == {
        "price_category": served["price_category"],
        **{probability_column(c): p for c, p in served["probabilities"].items()},
    }


# A fresh caller's patience while the front door is under attack: what it promises.
ANSWERED_WITHIN_SECONDS = 1
REFUSED_WITHIN_SECONDS = 2


def answered_fresh(method: str, path: str, **arguments) -> None:
    """A fresh caller, on a new connection, gets a 200 within its timeout."""
    response = requests.request(
        method, f"{SERVICE}{path}", timeout=ANSWERED_WITHIN_SECONDS, **arguments
    )
    assert response.status_code == 200, response.text[:300]


def test_stalled_slow_and_silent_clients_leave_fresh_callers_answered(lab):
    crowd = Crowd("127.0.0.1", 8000)
    try:
        crowd.stalled_headers(32)
        crowd.slow_uploads(20, 2 * 1024 * 1024)
        crowd.connect_only(200)
        # The crowd is held for 20 s, and fresh callers come four times a second meanwhile.
        held_until = time.monotonic() + 20
        while time.monotonic() < held_until:
            answered_fresh("GET", "/health")
            answered_fresh("POST", "/predict", json=CHALLENGE)
            time.sleep(0.25)  # callers' pace, not a wait for the service
    finally:
        crowd.close()
    print(f"uploads cut off while held: {len(crowd.cut_off)}")


def refusal(answer: bytes, sent: int, pieces: list[bytes], pause: float) -> dict:
    assert answer, "no answer in time: the connection was closed, reset or left waiting"
    status, body = status_and_json(answer)
    assert status == 413, answer[:300]
    assert body["details"][0]["field"] == "body" and body["request_id"]
    if pause:
        assert sent < len(pieces), "answered only once the whole body was sent"
    return body


@pytest.mark.parametrize("how", ["in-one-go", "slowly", "chunked"])
def test_a_body_over_the_cap_gets_a_json_413_at_the_front_door(lab, how):
    over = 3 * 1024 * 1024
    lines = ["POST /predict HTTP/1.1", "Host: localhost", "Content-Type: application/json"]
    framing = "Transfer-Encoding: chunked" if how == "chunked" else f"Content-Length: {over}"
    pieces = [json.dumps(CHALLENGE).encode()] + [b" " * 65536] * (over // 65536)
    if how == "chunked":
        pieces = chunked(pieces)
    with socket.create_connection(("127.0.0.1", 8000), timeout=10) as connection:
        connection.sendall(("\r\n".join([*lines, framing]) + "\r\n\r\n").encode())
        pause = 0.05 if how == "slowly" else 0.0
        answer, sent = send_until_answered(connection, pieces, pause, REFUSED_WITHIN_SECONDS)
    refusal(answer, sent, pieces, pause)


def test_an_unfinished_explanation_holds_no_slot_behind_the_front_door(lab):
    answered = explanations_while_one_is_held("127.0.0.1", 8000, [CHALLENGE])
    assert answered and set(answered) == {200}, answered


def test_monitor_in_the_lab_judges_the_services_log_in_postgres(lab):
    # Traffic to the served champion from inside the stack, with the true prices as feedback.
    replay = (
        *("docker", "compose", "exec", "-T", "ds_environment", "mlops-lab", "replay"),
        *("--url", "http://prediction_service:8000", "--limit", "600", "--feedback"),
    )
    replayed = lab.run(*replay)
    assert "replayed 600 listings" in replayed.stdout, replayed.stdout + replayed.stderr
    started = time.monotonic()
    monitored = lab.run(
        *("docker", "compose", "exec", "-T", "ds_environment"),
        *("mlops-lab", "monitor", "--last", "600"),
        check=False,
    )
    lab.timings["monitor"] = round(time.monotonic() - started, 1)
    assert monitored.returncode == 0, monitored.stdout + monitored.stderr[-3000:]
    assert f"{MODEL} v1: 600 predictions" in monitored.stdout
    assert "no alert" in monitored.stdout
    # The report and summary are the checkout's (the lab works as its owner), and in MLflow.
    summary = json.loads((lab.path / "reports" / "monitoring" / "summary.json").read_text())
    assert summary["quality"]["with_feedback"] == 600
    experiment = client().get_experiment_by_name(f"{MODEL}-monitoring")
    (run,) = client().search_runs([experiment.experiment_id])
    assert run.data.tags["mlops_lab.model_version"] == "1"


SCHEDULER = "http://localhost:4200"


def scheduler_api(lab, method: str, path: str, body: dict | None = None) -> requests.Response:
    """The scheduler's API, logged in as .env's SCHEDULER_USER, as the UI is."""
    settings = lab.settings()
    login = (settings["SCHEDULER_USER"], settings["SCHEDULER_PASSWORD"])
    return requests.request(method, f"{SCHEDULER}/api{path}", json=body, auth=login, timeout=30)


def run_logs(lab, run_id: str) -> list[dict]:
    """A run's log, oldest first, from the scheduler's API."""
    query = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"}
    return scheduler_api(lab, "POST", "/logs/filter", query).json()


def scheduler_run_page(lab, run_id: str, picture: Path) -> str:
    """The run's page in the scheduler's UI, logged in as a person would: its rendered text."""
    settings = lab.settings()
    login = f"{settings['SCHEDULER_USER']}:{settings['SCHEDULER_PASSWORD']}"
    with devtools(picture.parent / "profile") as page:
        page.open(f"{SCHEDULER}/")
        poll_until(lambda: page.evaluate("document.readyState") == "complete", 60, "the UI")
        page.evaluate(f"localStorage.setItem('prefect-password', btoa({json.dumps(login)}))")
        page.open(f"{SCHEDULER}/runs/flow-run/{run_id}")
        # Drawn: the state, the flow's name and the log down to the decision.
        shown = ("Completed", "lab-loop", '"decision": ')
        text = read_until(page.text, lambda now: all(part in now for part in shown), 90, "the page")
        page.screenshot(picture)
    return " ".join(text.replace("\xa0", " ").split())


def test_the_scheduler_runs_the_loop_on_demand_and_the_receiver_gets_the_decision(lab, tmp_path):
    with JsonReceiver("0.0.0.0") as receiver:
        # The host, as the stack's containers reach it: their network's gateway.
        mlflow_container = lab.run("docker", "compose", "ps", "-q", "mlflow").stdout.strip()
        network = lab.run(
            *("docker", "inspect", mlflow_container),
            *("--format", "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}"),
        ).stdout.strip()
        config_path = lab.path / "config.yaml"
        config_text = config_path.read_text()
        notify = f"http://{network}:{receiver.port}/decisions"
        # The window the monitor test judged (the last 600 predictions), and where to send.
        edited = config_text.replace("window_size: 5000", "window_size: 600")
        config_path.write_text(edited.replace("notify_url: ''", f"notify_url: {notify}"))
        try:
            lab.timed(
                "loop_up_to_healthy",
                "docker",
                "compose",
                "--profile",
                "loop",
                "up",
                "-d",
                "--wait",
                "scheduler",
                "loop_worker",
            )
            assert (
                requests.post(f"{SCHEDULER}/api/flows/filter", json={}, timeout=10).status_code
                == 401
            )
            deployment = poll_until(
                lambda: scheduler_api(lab, "GET", "/deployments/name/lab-loop/nightly").ok
                and scheduler_api(lab, "GET", "/deployments/name/lab-loop/nightly").json(),
                120,
                "the worker to register the loop's deployment",
            )
            assert deployment["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
            started = time.monotonic()
            run = scheduler_api(lab, "POST", f"/deployments/{deployment['id']}/create_flow_run", {})
            run_id = run.json()["id"]
            finished = read_until(
                lambda: scheduler_api(lab, "GET", f"/flow_runs/{run_id}").json()["state_type"],
                lambda state: state in {"COMPLETED", "FAILED", "CRASHED"},
                600,
                "the loop's run to finish",
            )
            lab.timings["loop_run"] = round(time.monotonic() - started, 1)
            # A run's last log lines reach the server a second or two after its end.
            lines = read_until(
                lambda: [entry["message"] for entry in run_logs(lab, run_id)],
                lambda messages: finished != "COMPLETED"
                or any(message.startswith('{"decision"') for message in messages),
                60,
                "the run's log to hold the decision",
            )
            assert finished == "COMPLETED", "\n".join(lines[-40:])
            text = scheduler_run_page(lab, run_id, tmp_path / "scheduler-run.png")
        finally:
            config_path.write_text(config_text)
            lab.run("docker", "compose", "--profile", "loop", "stop", "scheduler", "loop_worker")
    # The steps, in the run's log as the UI shows them: monitor's window, then the decision.
    assert any(f"window: 600 predictions of {MODEL} v1" in line for line in lines), lines[-40:]
    (decision,) = receiver.bodies
    assert decision["decision"] == "no alert"
    assert [json.loads(line) for line in lines if line.startswith('{"decision"')] == [decision]
    assert f"window: 600 predictions of {MODEL} v1" in text, text[-3000:]
    assert '"decision": "no alert"' in text, text[-3000:]
    shutil.copy(tmp_path / "scheduler-run.png", lab.path.parent / "scheduler-run.png")


# What the official python:3.11-slim (bookworm, amd64) unpacks to. The sandbox's stand-in for
# it is larger (Debian's full Python), so there the budget applies to the layers we add.
OFFICIAL_PYTHON_SLIM_MB = 130
# 700 until the service moved to granian, whose compiled server is 21 MB where gunicorn's
# pure Python was 1 MB: 713 MB measured then.
SERVICE_IMAGE_BUDGET_MB = 720
# The MLflow image before it had a lock of its own (pip, the lab's whole lock as constraints).
MLFLOW_IMAGE_BEFORE_MB = 1035


def image_megabytes(image: str) -> float:
    inspected = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(inspected.stdout) / 1e6


def test_the_service_image_holds_the_models_runtime_and_nothing_else(lab):
    image = lab.image("prediction_service")
    absent = ("dvc", "optuna", "pytest", "ruff", "black", "shap", "matplotlib")
    found = lab.run(
        "docker",
        "run",
        "--rm",
        "--entrypoint",
        "python",
        image,
        "-c",
        "import importlib.util, json, shutil; print(json.dumps("
        f"[name for name in {absent!r} if importlib.util.find_spec(name)]"
        f" + [command for command in {(*absent, 'git')!r} if shutil.which(command)]))",
    )
    assert json.loads(found.stdout) == []
    size = image_megabytes(image)
    base_labels = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", "python:3.11-slim"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "org.sandbox.stand-in" in base_labels:
        own_layers = size - image_megabytes("python:3.11-slim")
        assert (
            own_layers + OFFICIAL_PYTHON_SLIM_MB <= SERVICE_IMAGE_BUDGET_MB
        ), f"{size:.0f} MB here; {own_layers:.0f} MB of it on top of the base image"
    else:
        assert size <= SERVICE_IMAGE_BUDGET_MB
    assert image_megabytes(lab.image("mlflow")) <= MLFLOW_IMAGE_BEFORE_MB


def test_the_services_never_run_as_root_and_the_lab_as_the_checkouts_owner(lab):
    for service in ("mlflow", "prediction_service"):
        uid = lab.run("docker", "compose", "exec", "-T", service, "id", "-u").stdout.strip()
        assert uid != "0", f"{service} runs as root"
    # This checkout is the test's own clone: root's here, a developer's own elsewhere.
    owner = lab.path.stat().st_uid
    for path in ("dvc.lock", "metrics/training.json", "models/price_category/MLmodel"):
        assert (lab.path / path).stat().st_uid == owner, path
    logs = lab.run("docker", "compose", "logs", "--no-color", "ds_environment").stdout
    assert f"uid {owner}," in logs or (
        owner == 0 and "because the checkout /app belongs to root" in logs
    )


@pytest.mark.parametrize("owner", [1000, 1234])
def test_a_checkout_of_any_uid_gets_files_of_its_own(lab, owner):
    # Another user, in a home of their own, clones the repository (from a bundle: they cannot
    # read this test's folders). The lab's commands under `docker exec`, as `docker compose
    # exec` runs them, then write files that are theirs.
    home = Path(tempfile.mkdtemp(prefix=f"lab-user-{owner}-"))
    try:
        home.chmod(0o755)
        os.chown(home, owner, owner)
        bundle = home / "mlops-lab.bundle"
        lab.run("git", "-c", "safe.directory=*", "bundle", "create", str(bundle), "HEAD")
        checkout = home / "mlops-lab"
        subprocess.run(
            [
                *("setpriv", f"--reuid={owner}", f"--regid={owner}", "--clear-groups"),
                *("git", "clone", "--quiet", str(bundle), str(checkout)),
            ],
            check=True,
            env={**os.environ, "HOME": str(home)},
        )
        # The stack's lab image on that clone, tracking to the clone's own embedded store:
        # more files written into the checkout.
        container = lab.run(
            *("docker", "run", "--detach", "--init", "--volume", f"{checkout}:/app"),
            lab.image("ds_environment"),
        ).stdout.strip()
        try:
            lab.run("docker", "exec", container, "dvc", "repro", "data_prep", timeout=600)
            assert (checkout / "data" / "prepared" / "listings.parquet").is_file()
            strangers = [path for path in checkout.rglob("*") if path.lstat().st_uid != owner]
            assert strangers == [], strangers[:5]
            uid = lab.run(
                "docker", "exec", container, "python", "-c", "import os; print(os.getuid())"
            )
            assert uid.stdout.strip() == str(owner)
        finally:
            lab.run("docker", "rm", "--force", container, check=False)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_mlflow_lets_strangers_and_the_service_change_nothing_and_the_lab_write(lab):
    settings = lab.settings()
    service = (settings["MLFLOW_SERVICE_USER"], settings["MLFLOW_SERVICE_PASSWORD"])
    the_lab = (settings["MLFLOW_LAB_USER"], settings["MLFLOW_LAB_PASSWORD"])
    run = pipeline_runs()[0].info
    upload = f"/api/2.0/mlflow-artifacts/artifacts/{run.experiment_id}/{run.run_id}/artifacts"
    alias = "/api/2.0/mlflow/registered-models/alias"
    champion = {"name": MODEL, "alias": "champion"}
    writes = {
        "move the champion": ("POST", alias, {"json": {**champion, "version": "1"}}),
        "delete a run": ("POST", "/api/2.0/mlflow/runs/delete", {"json": {"run_id": run.run_id}}),
        "upload an artifact": ("PUT", f"{upload}/planted.txt", {"data": b"planted"}),
    }
    for what, (method, path, body) in writes.items():
        anonymous = requests.request(method, MLFLOW + path, timeout=30, **body)
        assert anonymous.status_code == 401, (what, anonymous.text)
        as_service = requests.request(method, MLFLOW + path, auth=service, timeout=30, **body)
        assert as_service.status_code == 403, (what, as_service.text)
    # What the service needs it may do: read the champion.
    read = requests.get(MLFLOW + alias, params=champion, auth=service, timeout=30)
    assert read.status_code == 200 and read.json()["model_version"]["version"] == "1"
    # The lab's account writes: an alias set and removed, an artifact uploaded.
    check = {"name": MODEL, "alias": "compose-check", "version": "1"}
    assert requests.post(MLFLOW + alias, json=check, auth=the_lab, timeout=30).status_code == 200
    removed = requests.delete(MLFLOW + alias, json=check, auth=the_lab, timeout=30)
    assert removed.status_code == 200, removed.text
    uploaded = requests.put(f"{MLFLOW}{upload}/lab-check.txt", data=b"ok", auth=the_lab, timeout=30)
    assert uploaded.status_code == 200, uploaded.text
    # A stage run without the lab's login says what to set.
    stranger = lab.run(
        *("docker", "compose", "exec", "-T", "-e", "MLFLOW_TRACKING_USERNAME="),
        *("-e", "MLFLOW_TRACKING_PASSWORD_FILE=", "ds_environment", "mlops-lab", "data-prep"),
        check=False,
    )
    assert stranger.returncode == 1
    assert "asks for a login: set MLFLOW_TRACKING_USERNAME" in stranger.stderr, stranger.stderr
    # A plain `python` in the lab (a notebook, a script) is logged in as the lab's account too.
    searched = lab.run(
        *("docker", "compose", "exec", "-T", "ds_environment", "python", "-c"),
        "import mlflow; print(len(mlflow.search_runs(search_all_experiments=True)))",
    )
    # Every run it may read: the pipeline's, and their stages' and candidates' runs.
    assert int(searched.stdout.split()[-1]) > len(pipeline_runs()), searched.stdout


def test_no_container_shows_a_password(lab):
    passwords = [value for name, value in lab.settings().items() if name.endswith("PASSWORD")]
    assert len(passwords) == 9
    profiles = ("--profile", "serve", "--profile", "loop")
    # The scheduler's two are stopped, not gone, since its test: inspected all the same.
    containers = lab.run("docker", "compose", *profiles, "ps", "--all", "-q").stdout.split()
    # postgres, mlflow, the lab, the service and its front door, the scheduler and its worker
    assert len(containers) == 7
    inspected = lab.run("docker", "inspect", *containers).stdout
    shown = lab.run("docker", "compose", *profiles, "config").stdout
    for password in passwords:
        assert password not in inspected and password not in shown


def test_each_database_login_reaches_its_own_database_only(lab):
    settings = lab.settings()

    def psql(user: str, password: str, database: str):
        return lab.run(
            *("docker", "compose", "exec", "-T", "-e", f"PGPASSWORD={password}", "postgres"),
            *("psql", "--host", "127.0.0.1", "--username", user, "--dbname", database),
            *("--no-psqlrc", "--command", "SELECT 1"),
            check=False,
        )

    for login in ("OPTUNA", "PREDICTIONS", "PREFECT"):
        user, password = settings[f"{login}_DB_USER"], settings[f"{login}_DB_PASSWORD"]
        assert psql(user, password, settings[f"{login}_DB_NAME"]).returncode == 0
        refused = psql(user, password, settings["MLFLOW_DB_NAME"])
        assert refused.returncode != 0
        assert "permission denied for database" in refused.stderr, refused.stderr
    # The superuser, with its right password, from the lab's container: refused.
    connect = (
        "import os, psycopg2; psycopg2.connect(host='postgres', user='postgres', "
        "password=os.environ['PGPASSWORD'], dbname='postgres')"
    )
    superuser = lab.run(
        *("docker", "compose", "exec", "-T", "-e", f"PGPASSWORD={settings['POSTGRES_PASSWORD']}"),
        *("ds_environment", "python", "-c", connect),
        check=False,
    )
    assert superuser.returncode != 0
    assert "pg_hba.conf rejects connection for host" in superuser.stderr, superuser.stderr
    # Through the postgres container's own socket it still logs in.
    lab.run(
        *("docker", "compose", "exec", "-T", "postgres", "psql", "--username", "postgres"),
        *("--no-psqlrc", "--command", "SELECT 1"),
    )


def test_stopping_the_service_answers_the_request_a_client_is_still_sending(lab):
    body = json.dumps(CHALLENGE).encode()
    head = (
        "POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", 8000), timeout=60) as caller:
        # A slow caller: the front door has its request and waits for the rest of the body.
        caller.sendall(head + body[:10])
        time.sleep(1)  # nothing to poll: the front door reads what came, then waits for more
        # As `docker compose stop` stops the service: its front door first, which answers
        # what it holds, then the service.
        stop = lab.popen("docker", "compose", "stop", "front_door", "prediction_service")
        time.sleep(3)  # a stop that does not wait for the request would be over by now
        assert stop.poll() is None, "the service stopped with a request in flight"
        caller.sendall(body[10:])
        answer = b""
        while chunk := caller.recv(65536):
            answer += chunk
    _, stderr = stop.communicate(timeout=60)
    assert stop.returncode == 0, stderr
    status, _, payload = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200"), answer[:500]
    assert json.loads(payload)["price_category"] in {"low", "mid", "high", "lux"}


def test_killing_mlflow_mid_repro_fails_clearly_and_a_rerun_succeeds(lab):
    # Small models on a 3,000-listing sample: what is tested is the failure and the
    # recovery, and full-size training (already run above) would only add minutes to both runs.
    config_path = lab.path / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    small_run(config)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    before = {run.info.run_id for run in pipeline_runs()}
    repro = lab.popen(
        "docker", "compose", "exec", "-T", "ds_environment", "dvc", "repro", "--force", "training"
    )

    # Kill it once training has begun recording: a candidate's run exists on the server.
    def training_started() -> bool:
        experiment = client().get_experiment_by_name(MODEL)
        return experiment is not None and bool(
            client().search_runs(
                [experiment.experiment_id],
                filter_string=(
                    "tags.`mlops_lab.stage` = 'training' and attributes.status = 'RUNNING'"
                ),
            )
        )

    poll_until(
        lambda: repro.poll() is not None or training_started(), 600, "a training run to start"
    )
    assert repro.poll() is None, "the repro ended before training started"
    lab.run("docker", "compose", "kill", "mlflow")
    _, stderr = repro.communicate(timeout=600)
    assert repro.returncode != 0
    assert "error: the stage stopped: MLflow tracking server at http://mlflow:5000" in stderr
    assert "Traceback" not in stderr

    lab.run("docker", "compose", "up", "-d", "--wait")
    lab.run(
        "docker", "compose", "exec", "-T", "ds_environment", "dvc", "repro", "--force", "training"
    )
    after = {run.info.run_id for run in pipeline_runs()}
    assert before < after
    versions = {version.version for version in client().search_model_versions(f"name='{MODEL}'")}
    assert {"1", "2"} <= versions


def test_down_and_up_keeps_runs_models_and_artifacts(lab):
    runs = sorted(run.info.run_id for run in pipeline_runs())
    versions = sorted(v.version for v in client().search_model_versions(f"name='{MODEL}'"))
    champion = client().get_model_version_by_alias(MODEL, "champion")
    first = lab.path.parent / "before-down"
    first.mkdir()
    plots = Path(client().download_artifacts(champion.run_id, "explainability", str(first)))
    lab.run("docker", "compose", "--profile", "serve", "down")
    lab.timed("up_again_to_healthy", "docker", "compose", "up", "-d", "--wait")
    assert sorted(run.info.run_id for run in pipeline_runs()) == runs
    assert sorted(v.version for v in client().search_model_versions(f"name='{MODEL}'")) == versions
    second = lab.path.parent / "after-up"
    second.mkdir()
    plots_again = Path(client().download_artifacts(champion.run_id, "explainability", str(second)))
    files = sorted(path.name for path in plots.iterdir())
    assert files and sorted(path.name for path in plots_again.iterdir()) == files
    for name in files:
        assert (plots / name).read_bytes() == (plots_again / name).read_bytes()
    print(json.dumps(lab.timings))


# The same stack on Docker Swarm (docs/swarm.md, "More than one machine"): docker-compose.yml with
# docker-compose.swarm.yml layered on, deployed by `mlops-lab swarm deploy` on a one-node swarm,
# on the volumes the compose stack above left.
REPLICAS = 3
CLIENTS = 2
# Steady traffic, not a load test: about 50 calls a second per client. Flat out, the clients,
# nginx and three replicas took both cores from the other pytest worker for four minutes. Two:
# with four, the replicas' loads of a new champion once took 36 to 45 s (docs/swarm.md).
CALL_PAUSE_SECONDS = 0.02
# The bound: every replica serves a new champion within its refresh interval
# (config.yaml's serving.model_refresh_seconds) and 10 s.
FOLLOWED_WITHIN_SECONDS = 30 + 10
# The front door asks Docker's DNS again every 5 s (its resolver's `valid`).
REPLICA_FOUND_WITHIN_SECONDS = 5 + 10
# How long after `docker kill` returns a killed replica may still take a request in: its
# processes die in a few ms, but not at once, and a listening socket lives while one does.
DYING_SECONDS = 1


def front_door_callers(sent: dict[str, float] | None = None) -> Callers:
    """CLIENTS clients sending single predictions through the front door, steadily; when each
    request (by its X-Request-ID) was sent goes into `sent`, if given."""
    return prediction_callers(SERVICE, CHALLENGE, CLIENTS, CALL_PAUSE_SECONDS, sent)


def predictions_answered(swarm, container: str) -> float:
    samples = metric_text_samples(swarm.ask(container, "/metrics"))
    return metric_sum(samples, "http_requests_total", endpoint="/predict")


def test_the_stack_file_is_the_compose_file_and_swarm_accepts_it(swarm):
    rendered = swarm.lab.run(str(Path(sys.executable).with_name("mlops-lab")), "swarm", "render")
    stack = yaml.safe_load(rendered.stdout)
    swarm.lab.run("docker", "stack", "config", "--compose-file", "-", input=rendered.stdout)
    compose = swarm.lab.configuration()["services"]
    # What the swarm file adds to a service's environment, and nothing else, is all that differs.
    additions = yaml.safe_load((swarm.lab.path / "docker-compose.swarm.yml").read_text())
    assert set(stack["services"]) == set(compose)
    for name, service in compose.items():
        for key in ("image", "command", "healthcheck", "secrets", "init"):
            assert stack["services"][name].get(key) == service.get(key), (name, key)
        added = additions["services"].get(name, {}).get("environment", {})
        assert stack["services"][name].get("environment") == {
            **service.get("environment", {}),
            **added,
        }, name
        targets = [mount["target"] for mount in service.get("volumes", [])]
        assert [mount["target"] for mount in stack["services"][name].get("volumes", [])] == targets
        ports = [int(port["published"]) for port in service.get("ports", [])]
        assert [port["published"] for port in stack["services"][name].get("ports", [])] == ports


def test_the_stack_serves_the_compose_stacks_champion_and_finds_new_replicas(swarm):
    champion = client().get_model_version_by_alias(MODEL, "champion")
    with front_door_callers() as callers:
        # The front door has looked the service up and spreads calls over the replicas there.
        callers.wait_for_calls(100)
        swarm.lab.timed(
            "swarm_scale_to_3",
            *("docker", "service", "scale", "--detach=false"),
            f"{swarm.service('prediction_service')}={REPLICAS}",
        )
        replicas = swarm.containers("prediction_service")
        assert len(replicas) == REPLICAS
        poll_until(
            lambda: all(predictions_answered(swarm, container) > 0 for container in replicas),
            REPLICA_FOUND_WITHIN_SECONDS,
            "every replica, the new one too, to answer predictions through the front door",
        )
        callers.wait_for_calls(100)
    assert callers.failures() == []
    assert {answer["model_version"] for answer in callers.answered()} == {champion.version}


def following_context(swarm) -> str:
    """What each replica says it serves (/ready), and its log lines of following the champion."""
    lines = []
    for container in swarm.containers("prediction_service"):
        lines.append(f"{container}: {swarm.ask(container, '/ready')}")
        logs = swarm.lab.run("docker", "logs", "--timestamps", container, check=False)
        lines += [
            line for line in logs.stdout.splitlines() if "mlops_lab.service.following" in line
        ]
    return "\n".join(lines)


def test_a_new_champion_reaches_every_replica_with_no_failed_request(swarm):
    champion = client().get_model_version_by_alias(MODEL, "champion")
    # A promotion, as the promote stage ends one: a gated version takes the alias.
    new = client().create_model_version(MODEL, f"models:/{MODEL}/{champion.version}")
    client().set_model_version_tag(MODEL, new.version, GATE_TAG, GATE_PASSED)
    with front_door_callers() as callers:
        callers.wait_for_calls(20)
        client().set_registered_model_alias(MODEL, "champion", new.version)
        promoted = time.monotonic()
        read_until(
            lambda: [answer["model_version"] for answer in callers.answered()[-100:]],
            lambda last: len(set(last)) == 1 and last[0] == new.version,
            FOLLOWED_WITHIN_SECONDS,
            f"the last 100 answers to name v{new.version}",
            lambda: following_context(swarm),
        )
        followed = time.monotonic() - promoted
        callers.wait_for_calls(200)
    assert callers.failures() == []
    for container in swarm.containers("prediction_service"):
        for _ in range(4):
            assert json.loads(swarm.ask(container, "/ready"))["model_version"] == new.version
    swarm.lab.swarm_counts["new_champion"] = {
        "calls": callers.calls,
        "failed": len(callers.failures()),
        "all_replicas_followed_after_s": round(followed, 1),
    }


def test_rolling_a_new_service_image_fails_no_request(swarm):
    image = swarm.lab.image("prediction_service")
    rolled = image.replace(":latest", ":rolled")
    # A new image of the service (a new id, as a rebuild gives), built from the one running.
    swarm.lab.run(
        *("docker", "build", "--quiet", "--tag", rolled, "-"),
        input=f"FROM {image}\nLABEL org.mlops-lab.rolled=true\n",
    )
    with front_door_callers() as callers:
        callers.wait_for_calls(20)
        swarm.lab.timed(
            "swarm_rolling_update",
            *("docker", "service", "update", "--detach=false", "--no-resolve-image"),
            *("--image", rolled, swarm.service("prediction_service")),
        )
        callers.wait_for_calls(100)
    assert callers.failures() == []
    running = swarm.containers("prediction_service")
    assert len(running) == REPLICAS
    for container in running:
        shown = swarm.lab.run("docker", "inspect", "--format", "{{.Config.Image}}", container)
        assert shown.stdout.strip().startswith(rolled), shown.stdout
    swarm.lab.swarm_counts["rolling_update"] = {"calls": callers.calls, "failed": 0}


def front_door_log_lines(swarm) -> dict[str, dict]:
    """The front door's log lines of requests, by request id."""
    (front_door,) = swarm.containers("front_door")
    logs = swarm.lab.run("docker", "logs", front_door)
    lines = (json.loads(line) for line in logs.stdout.splitlines() if line.startswith("{"))
    return {line["request_id"]: line for line in lines}


def test_a_killed_replica_costs_at_most_its_requests_in_flight_and_comes_back(swarm):
    victim = swarm.containers("prediction_service")[0]
    address = swarm.lab.run(
        *("docker", "inspect", victim, "--format"),
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    ).stdout.strip()
    sent: dict[str, float] = {}
    with front_door_callers(sent) as callers:
        callers.wait_for_calls(50)
        swarm.lab.run("docker", "kill", victim)
        killed = time.monotonic()
        poll_until(
            lambda: len(set(swarm.containers("prediction_service")) - {victim}) == REPLICAS
            and swarm.replicas("prediction_service") == f"{REPLICAS}/{REPLICAS}",
            120,
            f"the swarm to restore {REPLICAS} replicas",
        )
        callers.wait_for_calls(200)
    # Every failure is a request the killed replica held as it died: one the front door had
    # handed it (and, being a POST, may not send twice), answered 502 and logged with its
    # address, sent before the kill or in the moment its processes took to die (measured: a
    # few ms). None was lost on the way, none went to another replica, and none that came
    # later was sent to the dead address.
    assert not callers.errors, callers.errors
    refused = [answer for answer in callers.answers if answer.status_code != 200]
    logged = front_door_log_lines(swarm)
    for answer in refused:
        request_id = answer.headers["X-Request-ID"]
        line = logged[request_id]
        assert answer.status_code == line["status"] == 502, answer.text
        assert line["service_address"].split(", ")[-1] == f"{address}:8000", line
        assert sent[request_id] < killed + DYING_SECONDS, (sent[request_id] - killed, line)
    swarm.lab.swarm_counts["replica_killed"] = {"calls": callers.calls, "failed": len(refused)}
