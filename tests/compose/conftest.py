"""The compose tier: the README's Docker commands, run for real on a clone of this repository.

Needs a Docker engine with Compose v2. On these machines `../shared/sandbox/docker-up.sh`
installs and starts one; where no engine can start, every test here is SKIPPED with the
reason (visible in pytest's summary), never passed silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from waiting import skip_or_fail

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The sandbox's engine installer, next to the project as its README says; SANDBOX_DOCKER_UP
# points elsewhere when the checkout lives somewhere else (a clone in /tmp, say).
DOCKER_UP_CANDIDATES = (
    os.environ.get("SANDBOX_DOCKER_UP", ""),
    str(PROJECT_ROOT.parent / "shared" / "sandbox" / "docker-up.sh"),
    "/work/shared/sandbox/docker-up.sh",
)
# Its own project name, so the tier never touches a stack a developer has running.
PROJECT_NAME = "mlops-lab-compose-test"
RESULTS_PATH = PROJECT_ROOT / "bench" / "results" / "compose.json"


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def start_engine() -> None:
    """Make sure an engine and Compose v2 answer, or skip (in CI: fail) the tier saying why."""
    script = next(
        (Path(path) for path in DOCKER_UP_CANDIDATES if path and Path(path).is_file()), None
    )
    if script is not None:
        result = subprocess.run(
            ["bash", str(script)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1800
        )
        output = (result.stdout + result.stderr).strip()
        if result.returncode == 3:
            skip_or_fail(f"compose tier: the Docker engine could not start: {output[-500:]}")
        if result.returncode != 0:
            pytest.fail(f"{script} failed (exit {result.returncode}): {output[-2000:]}")
    elif not engine_answers():
        skip_or_fail(
            "compose tier: no Docker engine answers and no sandbox docker-up.sh was found "
            f"(looked in {', '.join(path for path in DOCKER_UP_CANDIDATES if path)})"
        )
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if version.returncode != 0:
        skip_or_fail(f"compose tier: `docker compose` (v2) is not available: {version.stderr}")


@dataclass
class Lab:
    """A clone of the repository with its own .env, and the compose commands run in it."""

    path: Path
    timings: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def built_image(service: str) -> str:
        """The image compose builds for a service that names none itself."""
        return f"{PROJECT_NAME}-{service}"

    def run(
        self, *arguments: str, timeout: float = 1200, check: bool = True
    ) -> subprocess.CompletedProcess:
        environment = {**os.environ, "COMPOSE_PROJECT_NAME": PROJECT_NAME}
        environment.pop("MLFLOW_TRACKING_URI", None)
        result = subprocess.run(
            list(arguments),
            cwd=self.path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{' '.join(arguments)} exited {result.returncode}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def popen(self, *arguments: str) -> subprocess.Popen:
        environment = {**os.environ, "COMPOSE_PROJECT_NAME": PROJECT_NAME}
        return subprocess.Popen(
            list(arguments),
            cwd=self.path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def settings(self) -> dict[str, str]:
        """The values of the lab's .env, as compose reads them."""
        lines = (self.path / ".env").read_text().splitlines()
        pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
        return {name.strip(): value.strip() for name, value in pairs}

    def timed(self, name: str, *arguments: str, timeout: float = 1200) -> None:
        started = time.monotonic()
        self.run(*arguments, timeout=timeout)
        self.timings[name] = round(time.monotonic() - started, 1)


def checkout(destination: Path) -> Path:
    """A clone of the committed repository set up as the README's Docker quick start says."""
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(destination)], check=True)
    shutil.copy(destination / ".env.example", destination / ".env")
    return destination


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The stack, built and up; torn down with its volumes at the end."""
    start_engine()
    lab = Lab(checkout(tmp_path_factory.mktemp("compose") / "mlops-lab"))
    # Leftovers of an interrupted earlier run would hold the ports and old data.
    lab.run("docker", "compose", "--profile", "serve", "down", "--volumes", check=False)
    # The tests read the tracking server from the host as the lab's account, as a user with
    # the lab's password would (MLflow's client takes it from these variables).
    settings = lab.settings()
    login = {
        "MLFLOW_TRACKING_USERNAME": settings["MLFLOW_LAB_USER"],
        "MLFLOW_TRACKING_PASSWORD": settings["MLFLOW_LAB_PASSWORD"],
    }
    before = {name: os.environ.get(name) for name in login}
    os.environ.update(login)
    try:
        yield lab
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        logs = lab.run("docker", "compose", "--profile", "serve", "logs", "--no-color", check=False)
        (lab.path.parent / "compose.log").write_text(logs.stdout + logs.stderr)
        lab.run(
            "docker",
            "compose",
            "--profile",
            "serve",
            "down",
            "--volumes",
            "--remove-orphans",
            check=False,
        )
        sizes = {}
        for image in (
            "mlops-lab:latest",
            "mlops-lab-serve:latest",
            Lab.built_image("mlflow"),
            Lab.built_image("postgres"),
        ):
            inspected = subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Size}}", image],
                capture_output=True,
                text=True,
            )
            if inspected.returncode == 0:
                sizes[image] = f"{int(inspected.stdout) / 1e6:.0f} MB"
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text(json.dumps({"seconds": lab.timings, "images": sizes}, indent=2))
