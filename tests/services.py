"""Real services the tests start: a throwaway PostgreSQL cluster, and the prediction service
as `make serve` runs it."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from projects import VENV_BIN, free_port, wait_until_ok


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: "
            "apt-get install postgresql (.ci/run does this)"
        )
    return found[-1].parent


def as_postgres(command: list[str]) -> list[str]:
    """Postgres refuses to run as root: run its tools as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresCluster:
    """A throwaway PostgreSQL cluster on loopback, run as the postgres user, that a test may
    stop and start again."""

    def __init__(self) -> None:
        self.binaries = postgres_bin()
        self.home = Path(tempfile.mkdtemp(prefix="mlops-lab-pg-"))
        self.data = self.home / "data"
        password_file = self.home / "password"
        password_file.write_text(secrets.token_hex(16) + "\n")
        self.home.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
            shutil.chown(password_file, "postgres", "postgres")
        self.port = free_port()
        self.tool(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={password_file}",
            "--no-sync",
        )
        self.start()

    def tool(self, name: str, *arguments: str) -> None:
        subprocess.run(
            as_postgres([str(self.binaries / name), *arguments]), check=True, capture_output=True
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.tool(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.home / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self.tool("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def sql(self, statement: str) -> None:
        self.tool(
            "psql",
            "-h",
            str(self.home),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            statement,
        )

    def database(self, name: str, user: str) -> str:
        """A database owned by a role of its own, with a password made up per run (so none is
        ever written into the repository): its SQLAlchemy URI."""
        password = secrets.token_hex(16)
        self.sql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        self.sql(f"CREATE DATABASE {name} OWNER {user}")
        return f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        subprocess.run(
            as_postgres(
                [str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(self.home, ignore_errors=True)


# The token the tests' services take for /feedback, as a deployment sets FEEDBACK_TOKEN; a test
# that sets FEEDBACK_TOKEN="" gets what `make serve` does without it (a token file).
FEEDBACK_TOKEN = "tests-feedback-token"


class Service:
    """The prediction service, as `make serve` runs it (in `cwd`, the checkout by default)."""

    def __init__(self, environment: dict[str, str], log_path: Path, cwd: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
        # HOST is left to its default, loopback, as `make serve` leaves it.
        env.pop("HOST", None)
        env.update(
            {"PORT": str(self.port), "WEB_CONCURRENCY": "2", "FEEDBACK_TOKEN": FEEDBACK_TOKEN}
        )
        # Each service logs its predictions to a file of its own, not to the checkout's.
        env["PREDICTION_LOG_URI"] = f"sqlite:///{log_path.parent / f'predictions-{self.port}.db'}"
        env.update(environment)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if not env["FEEDBACK_TOKEN"]:
            env.pop("FEEDBACK_TOKEN")
        self.feedback_headers = {"Authorization": f"Bearer {env.get('FEEDBACK_TOKEN', '')}"}
        self.log_path = log_path
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "mlops-lab"), "serve"],
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, seconds: float = 120) -> dict:
        ready = f"{self.url}/ready"
        return wait_until_ok(ready, self.process, self.log_path, "mlops-lab serve", seconds).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@contextmanager
def ready_service(environment: dict[str, str], log_path: Path) -> Iterator[Service]:
    """A service started and ready, stopped when the block ends."""
    service = Service(environment, log_path)
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()
