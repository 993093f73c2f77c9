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
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from waiting import poll_until, skip_or_fail

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
    # What the swarm tier counted under load (calls, failures, seconds), for docs/swarm.md.
    swarm_counts: dict[str, dict[str, float]] = field(default_factory=dict)

    def image(self, service: str) -> str:
        """The image docker-compose.yml names for a service (every service names its own)."""
        return self.configuration()["services"][service]["image"]

    def configuration(self) -> dict:
        """docker-compose.yml with its serve profile, as compose resolves it."""
        shown = self.run("docker", "compose", "--profile", "serve", "config", "--format", "json")
        return json.loads(shown.stdout)

    def run(
        self,
        *arguments: str,
        timeout: float = 1200,
        check: bool = True,
        input: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a command in the checkout: the test's environment, without its tracking URI
        unless `environment` (added to it) gives one."""
        environment = {
            **{key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"},
            "COMPOSE_PROJECT_NAME": PROJECT_NAME,
            **(environment or {}),
        }
        result = subprocess.run(
            list(arguments),
            cwd=self.path,
            env=environment,
            input=input,
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

    def timed(
        self,
        name: str,
        *arguments: str,
        timeout: float = 1200,
        environment: dict[str, str] | None = None,
    ) -> None:
        started = time.monotonic()
        self.run(*arguments, timeout=timeout, environment=environment)
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
    lab.run("docker", "compose", "--profile", "*", "down", "--volumes", check=False)
    # The tests read the tracking server from the host as the lab's account, as a user with
    # the lab's password would (MLflow's client takes it from these variables).
    settings = lab.settings()
    login = {
        "MLFLOW_TRACKING_USERNAME": settings["MLFLOW_LAB_USER"],
        "MLFLOW_TRACKING_PASSWORD": settings["MLFLOW_LAB_PASSWORD"],
    }
    before = {name: os.environ.get(name) for name in login}
    os.environ.update(login)
    services = lab.configuration()["services"]
    try:
        yield lab
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        logs = lab.run("docker", "compose", "--profile", "*", "logs", "--no-color", check=False)
        (lab.path.parent / "compose.log").write_text(logs.stdout + logs.stderr)
        lab.run(
            "docker",
            "compose",
            "--profile",
            "*",
            "down",
            "--volumes",
            "--remove-orphans",
            check=False,
        )
        sizes = {}
        for image in sorted({service["image"] for service in services.values()}):
            inspected = subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Size}}", image],
                capture_output=True,
                text=True,
            )
            if inspected.returncode == 0:
                sizes[image] = f"{int(inspected.stdout) / 1e6:.0f} MB"
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text(
            json.dumps(
                {"seconds": lab.timings, "swarm": lab.swarm_counts, "images": sizes}, indent=2
            )
        )


@dataclass
class Swarm:
    """The lab's stack deployed on a one-node swarm, under compose's project name (so on the
    compose stack's own volumes), and the docker commands the tests ask it with."""

    lab: Lab
    stack: str = PROJECT_NAME

    def service(self, name: str) -> str:
        return f"{self.stack}_{name}"

    def containers(self, name: str) -> list[str]:
        """The running containers of one of the stack's services."""
        listed = self.lab.run(
            *("docker", "ps", "--quiet", "--filter"),
            f"label=com.docker.swarm.service.name={self.service(name)}",
        )
        return listed.stdout.split()

    def replicas(self, name: str) -> str:
        """`docker service ls`'s REPLICAS of a service, such as "3/3"."""
        listed = self.lab.run(
            *("docker", "service", "ls", "--filter", f"name={self.service(name)}"),
            *("--format", "{{.Replicas}}"),
        )
        return listed.stdout.strip()

    def ask(self, container: str, path: str) -> str:
        """The body a prediction replica answers on its own loopback (the slim image has no
        curl, so Python asks)."""
        code = (
            "import urllib.request; "
            f"print(urllib.request.urlopen('http://127.0.0.1:8000{path}', timeout=10).read()"
            ".decode())"
        )
        return self.lab.run("docker", "exec", container, "python", "-c", code).stdout

    def logs(self) -> str:
        """Every container's log, the stopped ones' too (`docker service logs` can hang on a
        service one of whose tasks was killed)."""
        containers = self.lab.run(
            *("docker", "ps", "--all", "--quiet", "--filter"),
            f"label=com.docker.stack.namespace={self.stack}",
            check=False,
        ).stdout.split()
        logs = []
        for container in containers:
            name = self.lab.run(
                "docker", "inspect", "--format", "{{.Name}}", container, check=False
            ).stdout.strip()
            shown = self.lab.run("docker", "logs", "--timestamps", container, check=False)
            logs.append(f"== {name}\n{shown.stdout}{shown.stderr}")
        return "\n".join(logs)


def swarm_state() -> str:
    shown = subprocess.run(
        ["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], capture_output=True, text=True
    )
    return shown.stdout.strip()


@pytest.fixture(scope="module")
def swarm(lab: Lab) -> Iterator[Swarm]:
    """The compose stack stopped (its volumes kept), a one-node swarm made, and the stack
    deployed on it as the README says; at the end the stack removed and the swarm left, even
    when a test or the deploy failed."""
    if swarm_state() != "inactive":
        skip_or_fail(
            f"swarm tier: this engine is already in a swarm ({swarm_state()}); the tier makes "
            "its own and leaves it, so it does not touch one it did not make"
        )
    lab.run("docker", "compose", "--profile", "serve", "down")
    initialised = lab.run("docker", "swarm", "init", "--advertise-addr", "127.0.0.1", check=False)
    if initialised.returncode != 0:
        skip_or_fail(f"swarm tier: `docker swarm init` failed: {initialised.stderr.strip()}")
    swarm = Swarm(lab)
    try:
        lab.timed(
            "swarm_deploy_to_running",
            str(Path(sys.executable).with_name("mlops-lab")),
            *("swarm", "deploy", "--timeout", "600"),
        )
        yield swarm
    finally:
        try:
            (lab.path.parent / "swarm.log").write_text(swarm.logs())
            lab.run("docker", "stack", "rm", swarm.stack, check=False)
            # The compose tier's `down --volumes` removes the volumes once no container holds
            # them.
            poll_until(
                lambda: not lab.run(
                    *("docker", "ps", "--all", "--quiet", "--filter"),
                    f"label=com.docker.stack.namespace={swarm.stack}",
                ).stdout.strip(),
                120,
                "the stack's containers to be removed",
            )
        finally:
            lab.run("docker", "swarm", "leave", "--force")
