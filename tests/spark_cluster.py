"""A standalone Apache Spark cluster on this machine, as processes of the PySpark package: a
master and workers of one core each. Used by the Spark tier and bench/scoring.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pyspark
from projects import free_port
from waiting import read_until

# The Spark the PySpark package carries: its jars and launch scripts.
SPARK_HOME = Path(pyspark.__file__).parent
SPARK_CLASS = SPARK_HOME / "bin" / "spark-class"
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


class SparkCluster:
    """A master and `workers` one-core workers on 127.0.0.1, logging under `folder`; stopped
    on leaving the `with` block, even when it fails."""

    def __init__(self, folder: Path, workers: int = 2, worker_memory: str = "1g") -> None:
        self.folder = folder
        self.workers = workers
        self.worker_memory = worker_memory
        self.port = free_port()
        self.ui_port = free_port()
        self.processes: list[subprocess.Popen] = []
        # The driver, master and workers all on the loopback: this machine's name resolves to
        # another address that nothing here listens on.
        self.environment = {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_WORKER_DIR": str(folder / "work"),
        }

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def status(self) -> dict:
        """The master's own view of the cluster: its workers, applications and their state."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as page:
            return json.load(page)

    def start(self, name: str, *arguments: str) -> None:
        log = (self.folder / f"{name}.log").open("w")
        command = [str(SPARK_CLASS), *arguments]
        self.processes.append(
            subprocess.Popen(
                command,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-2000:]}"
            for path in sorted(self.folder.glob("*.log"))
        )

    def alive_workers(self) -> int:
        """How many workers the master counts; an error, with the logs, if a process ended."""
        ended = [process.args[2] for process in self.processes if process.poll() is not None]
        if ended:
            raise AssertionError(f"Spark's {', '.join(ended)} ended:\n{self.logs()}")
        try:
            return self.status()["aliveworkers"]
        except OSError:
            return 0

    def __enter__(self) -> SparkCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.start(
                "master",
                *(MASTER, "--host", "127.0.0.1", "--port", str(self.port)),
                *("--webui-port", str(self.ui_port)),
            )
            for number in range(self.workers):
                self.start(
                    f"worker-{number + 1}",
                    *(WORKER, "--host", "127.0.0.1", "--webui-port", str(free_port())),
                    *("--cores", "1", "--memory", self.worker_memory, self.url),
                )
            read_until(
                self.alive_workers,
                lambda alive: alive == self.workers,
                120,
                f"{self.workers} Spark workers to join the master",
                self.logs,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_) -> None:
        self.stop()

    def stop(self) -> None:
        """Every process of the cluster ended: asked first, killed if it does not go."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
