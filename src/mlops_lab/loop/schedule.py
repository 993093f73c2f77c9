"""The flow the stack's scheduler (Prefect 3, docs/loop.md) runs: `mlops-lab loop` in the
checkout, nightly (loop.schedule) and on demand. Prefect reads its settings when it is
imported: import this after scheduler_settings has put them in the environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from mlops_lab.loop.scheduler_settings import ScheduleError

FLOW_NAME = "lab-loop"
DEPLOYMENT_NAME = "nightly"


def decision_of(lines: list[str]) -> dict[str, Any]:
    """The loop's decision: the last line of its output that is a JSON document."""
    for line in reversed(lines):
        if line.startswith("{"):
            return json.loads(line)
    raise ScheduleError("mlops-lab loop printed no decision")


def decision_markdown(decision: dict[str, Any]) -> str:
    """The decision as the run page shows it: what was decided, why, and the scores."""
    rows = [
        "| | |",
        "|---|---|",
        f"| decision | **{decision['decision']}** |",
        f"| reason | {decision['reason']} |",
        f"| took | {decision.get('seconds', '?')} s |",
    ]
    for part, scored in decision.get("scores", {}).items():
        if isinstance(scored, dict):
            rows.append(
                f"| {part} | challenger {scored.get('challenger')}, "
                f"champion {scored.get('champion')} |"
            )
    return "\n".join(rows)


@task(name="mlops-lab loop", retries=1, retry_delay_seconds=60)
def run_loop(checkout: str) -> dict[str, Any]:
    """One `mlops-lab loop` in the checkout, each line of its output a line of the run's log;
    its decision, or ScheduleError when it failed (the run is retried once)."""
    logger = get_run_logger()
    lines: list[str] = []
    with subprocess.Popen(
        ["mlops-lab", "loop"],
        cwd=checkout,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            logger.info("%s", line.rstrip())
    if process.returncode != 0:
        try:
            why = decision_of(lines)["reason"]
        except ScheduleError:
            why = "\n".join(lines[-5:])
        raise ScheduleError(f"mlops-lab loop exited {process.returncode}: {why}")
    return decision_of(lines)


@flow(name=FLOW_NAME)
def lab_loop(checkout: str = "/app") -> dict[str, Any]:
    """One turn of the loop, its decision kept as the run's artifact."""
    decision = run_loop(checkout)
    create_markdown_artifact(
        markdown=decision_markdown(decision), key="loop-decision", description="The decision"
    )
    return decision


def serve_flow(schedule: str, checkout: Path) -> None:
    """Register the flow's deployment with its cron schedule and run its runs, until stopped."""
    lab_loop.serve(
        name=DEPLOYMENT_NAME,
        cron=schedule,
        parameters={"checkout": str(checkout)},
        description="One turn of `mlops-lab loop` (docs/loop.md)",
    )
