"""The `mlops-lab` command: one subcommand per pipeline stage, as dvc.yaml calls them, and
serve, tune, ablate and ui."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlops_lab.commands.replay import PARTS
from mlops_lab.common.errors import UserError
from mlops_lab.common.secrets import SecretFileError, passwords_from_files

# The stages' modules are imported by the command that runs them: `mlops-lab --help` and
# `mlops-lab serve` answer at once instead of after five seconds of scikit-learn and MLflow.
if TYPE_CHECKING:
    from mlflow.exceptions import MlflowException

    from mlops_lab.stages.context import StageContext

log = logging.getLogger("mlops_lab")


def _client_settings() -> None:
    """Fail in seconds, not minutes, when the tracking server goes away mid-run."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # A model download is a second or two; its per-file progress bars only bury the log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def build_context(config_path: Path, tuned_params: bool = True) -> StageContext:
    """Read config.yaml once and work out where this run is tracked and how it is tagged."""
    from mlops_lab.config import load_config
    from mlops_lab.kernel.inside_airbnb import require_raw_file
    from mlops_lab.stages.context import StageContext
    from mlops_lab.tracking.runs import (
        Lineage,
        git_state,
        pipeline_id,
        resolve_tracking,
        sha256_file,
    )

    config = load_config(config_path, tuned_params)
    project_root = Path.cwd()
    raw_path = config.data.raw_path
    require_raw_file(raw_path)
    # dvc repro rewrites these as it goes; they do not make the code differ from the commit.
    pipeline_outputs = [
        Path("dvc.lock"),
        config.data_prep.metrics_path.parent,
        config.training.metrics_path.parent,
        *(path.parent for path in config.explainability.reports.model_dump().values()),
    ]
    commit, dirty = git_state(project_root, pipeline_outputs)
    tracking = resolve_tracking(
        os.environ,
        project_root,
        config.tracking.embedded_store_dir,
        config.tracking.experiment_name,
        config.tracking.registered_model_name,
    )
    lineage = Lineage(pipeline_id(os.environ), commit, dirty, sha256_file(raw_path))
    return StageContext(config, tracking, lineage, project_root)


def _stop_on_sigterm(signal_number: int, _frame: object) -> None:
    """A stage told to stop unwinds, so its MLflow runs end FAILED instead of RUNNING."""
    # Once: a second stop landing in the unwinding would cut short the ending of the runs.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signal_number)


def _run_stage(
    config_path: Path, stage: Callable[[StageContext], None], tuned_params: bool = True
) -> None:
    from mlflow.exceptions import MlflowException

    _client_settings()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        stage(build_context(config_path, tuned_params))
    except MlflowException as error:
        _fail(_lost_server(error) or _refused(error) or str(error))
    except UserError as error:
        _fail(str(error))


def _lost_server(error: MlflowException) -> str | None:
    """Why a stage failed, when the cause is a tracking server that stopped answering."""
    import mlflow

    from mlops_lab.tracking.runs import TrackingUnavailable, check_reachable

    try:
        check_reachable(mlflow.get_tracking_uri())
    except TrackingUnavailable as unreachable:
        return (
            f"the stage stopped: {unreachable} Runs recorded before it stopped are kept; "
            f"once it is back, rerun dvc repro. (MLflow said: {str(error)[:300]})"
        )
    return None


def _refused(error: MlflowException) -> str | None:
    """Why a stage failed, when the tracking server refused its login or its account."""
    import mlflow

    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    if error.get_http_status_code() == 401:
        refused = f" and refused {user!r}" if user else ""
        return (
            f"the MLflow tracking server at {mlflow.get_tracking_uri()} asks for a login{refused}: "
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
            "MLFLOW_TRACKING_PASSWORD_FILE). The compose stack's lab account is .env's "
            "MLFLOW_LAB_USER and MLFLOW_LAB_PASSWORD."
        )
    if error.get_http_status_code() == 403:
        return f"the MLflow account {user!r} may not do this ({error.message[:200]})"
    return None


def _fail(message: str) -> None:
    """One line on stderr and exit status 1: the failures a user can act on."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _stop_as_interrupted(signal_number: int, _frame: object) -> None:
    """SIGTERM ends a command as Ctrl-C does: what it was writing is removed on the way out."""
    sys.exit(128 + signal_number)


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("config.yaml"),
    show_default=True,
    help="The pipeline's parameters.",
)


class SectionedGroup(click.Group):
    """A command group whose help lists its commands in COMMAND_SECTIONS' order and sections."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        named = [name for _, names in COMMAND_SECTIONS for name in names]
        return [*named, *sorted(set(self.commands) - set(named))]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        unsectioned = sorted(set(self.commands) - {n for _, ns in COMMAND_SECTIONS for n in ns})
        for title, names in (*COMMAND_SECTIONS, ("Other", tuple(unsectioned))):
            rows = [
                (name, self.commands[name].get_short_help_str(formatter.width - 20))
                for name in names
                if name in self.commands
            ]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


@click.group(cls=SectionedGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def main(verbose: bool) -> None:
    """MLOps Lab: the Airbnb price-category pipeline, its service, and what watches it."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # MLflow's own INFO lines (run links, model-size notes) drown the stage's progress.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # Every request of the scheduler's client, twice a minute: only its failures.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # `serve` leaves the signals to its server and its workers.
    if click.get_current_context().invoked_subcommand != "serve":
        signal.signal(signal.SIGTERM, _stop_as_interrupted)
    # Passwords given as files (the compose stack's secrets) become the variables MLflow's
    # client and `tune` read, for this process and every one it starts (dvc's stages, the
    # service's workers).
    try:
        passwords = passwords_from_files(os.environ)
    except SecretFileError as error:
        _fail(str(error))
    os.environ.update(passwords)
    # Read once: a command this one starts (`mlops-lab loop` runs dvc's stages, the scheduler
    # runs `mlops-lab loop`) takes the variable, and would refuse it beside its file.
    for name in passwords:
        os.environ.pop(f"{name}_FILE", None)


PROMOTE_MODULE = "mlops_lab.stages.promote.task"
# The pipeline's stages, as dvc.yaml calls them: command, module, and what it does.
STAGES = (
    (
        "data-prep",
        "mlops_lab.stages.data_prep.task",
        "Validate the raw listings and write the table.",
    ),
    (
        "training",
        "mlops_lab.stages.training.task",
        "Cross-validate the candidates on both views, register the winner, save it locally.",
    ),
    (
        "explainability",
        "mlops_lab.stages.explainability.task",
        "SHAP per listing field and evaluation plots of this run's model.",
    ),
    (
        "prediction-app",
        "mlops_lab.stages.prediction_app.task",
        "Load this run's registered model as the service does; answer the example payloads.",
    ),
    (
        "promote",
        PROMOTE_MODULE,
        "Give this run's model the champion alias if it answered and beats the champion.",
    ),
)


def stage_command(name: str, module: str, summary: str) -> click.Command:
    """The command that runs one stage's `task.run` on config.yaml."""

    @config_option
    def command(config_path: Path) -> None:
        _run_stage(config_path, lambda context: importlib.import_module(module).run(context))

    command.__doc__ = summary
    return click.command(name)(command)


for _stage in STAGES:
    if _stage[0] != "promote":
        main.add_command(stage_command(*_stage))


@main.command("promote")
@config_option
@click.option(
    "--approve",
    "version",
    default=None,
    metavar="VERSION",
    help="Instead of the stage: make champion a version that passed the gate and waits for "
    "approval (loop.require_approval).",
)
def promote(config_path: Path, version: str | None) -> None:
    """Give this run's model the champion alias if it answered and beats the champion."""
    if version is None:
        _run_stage(
            config_path, lambda context: importlib.import_module(PROMOTE_MODULE).run(context)
        )
        return
    from mlflow.exceptions import MlflowException

    from mlops_lab.commands.approve import task
    from mlops_lab.config import load_config

    _client_settings()
    try:
        previous = task.run(load_config(config_path, tuned_params=False), dict(os.environ), version)
    except MlflowException as error:
        _fail(_lost_server(error) or _refused(error) or str(error))
    except UserError as error:
        _fail(str(error))
    click.echo(f"champion: v{version}" + (f" (was v{previous})" if previous else ""))


# `mlops-lab --help` in sections: what dvc.yaml runs, and what a person runs.
COMMAND_SECTIONS = (
    (
        "Pipeline stages (dvc.yaml; `dvc repro` runs them in this order)",
        tuple(name for name, _, _ in STAGES),
    ),
    ("Optional stages (dvc.yaml, frozen: run on purpose)", ("tune", "ablate")),
    ("Results", ("summary", "ui")),
    (
        "Serving and after",
        (
            "serve",
            "replay",
            "monitor",
            "harvest",
            "loop",
            "schedule",
            "score",
            "rollback",
            "swarm",
        ),
    ),
)


@main.command("serve")
@config_option
@click.option(
    "--host",
    envvar="HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (HOST); 0.0.0.0 only behind a front door.",
)
@click.option(
    "--port",
    envvar="PORT",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port (PORT).",
)
@click.option(
    "--workers",
    envvar="WEB_CONCURRENCY",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (WEB_CONCURRENCY); by default one per core.",
)
@click.option(
    "--threads",
    envvar="SERVICE_THREADS",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Requests each worker answers at once (SERVICE_THREADS).",
)
@click.option(
    "--grace",
    envvar="GRACEFUL_TIMEOUT",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Seconds workers get to answer what they hold on SIGTERM (GRACEFUL_TIMEOUT).",
)
@click.option(
    "--reload-seconds",
    envvar="RELOAD_INTERVAL_SECONDS",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="On SIGHUP, how long each new worker gets to load the model before the old "
    "one it replaces stops (RELOAD_INTERVAL_SECONDS).",
)
@click.option(
    "--stop-delay",
    envvar="STOP_DELAY_SECONDS",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to go on answering new requests after SIGTERM, before draining "
    "(STOP_DELAY_SECONDS): longer than a front door keeps the replica's address.",
)
@click.option(
    "--log-level",
    envvar="LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def serve(
    config_path: Path,
    host: str,
    port: int,
    workers: int | None,
    threads: int,
    grace: int,
    reload_seconds: float,
    stop_delay: float,
    log_level: str,
) -> None:
    """Serve the champion on granian. What it serves comes from config.yaml; MODEL_URI and the
    options' variables override it (docs/serving.md). SIGHUP reloads the
    champion, SIGTERM drains."""
    from mlops_lab.service.environment import CONFIG_VARIABLE
    from mlops_lab.service.server import ServerOptions
    from mlops_lab.service.server import serve as run_server

    # The service retries a model it cannot load every MODEL_LOAD_RETRY_SECONDS itself; MLflow's
    # own retries would only hold back /health while the registry is down.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    _client_settings()
    # Read by every worker's app factory.
    os.environ[CONFIG_VARIABLE] = str(config_path.resolve())
    run_server(
        ServerOptions(
            host,
            port,
            workers or os.cpu_count() or 1,
            threads,
            grace,
            reload_seconds,
            log_level.lower(),
            stop_delay,
        )
    )


@main.command("tune")
@config_option
@click.option(
    "--candidate",
    "candidate_name",
    default=None,
    help="Whose study to join (config.yaml tuning.studies); the first study by default.",
)
def tune(config_path: Path, candidate_name: str | None) -> None:
    """Join a shared Optuna study (OPTUNA_STORAGE, else SQLite) and write its best parameters."""
    from mlops_lab.stages.tune import task

    _run_stage(config_path, lambda context: task.run(context, candidate_name), tuned_params=False)


@main.command("ablate")
@config_option
def ablate(config_path: Path) -> None:
    """Cross-validate the ablation candidate without each feature group in turn; write the table."""
    from mlops_lab.stages.ablate import task

    _run_stage(config_path, task.run)


# `score`'s exit status when some rows were not scored: the scores of the others are written.
SOME_ROWS_NOT_SCORED = 3


@main.command("score")
@config_option
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("output_path", metavar="OUTPUT", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--model-uri",
    default=None,
    help="The model to score with; by default what `make serve` serves (MODEL_URI, else the "
    "champion).",
)
@click.option(
    "--engine",
    type=click.Choice(["python", "spark"]),
    default="python",
    show_default=True,
    help="python: in this process, through the service's own path; spark: on Apache Spark, "
    "through MLflow's spark_udf, OUTPUT a Parquet folder (needs PySpark and Java 17).",
)
@click.option(
    "--master",
    default="local[*]",
    show_default=True,
    help="With --engine spark: the Spark master URL, e.g. spark://host:7077; local[*] runs "
    "Spark in this process, one thread per core.",
)
def score(config_path: Path, **options: Any) -> None:
    """Score a file of listings (an Inside Airbnb listings.csv, or the API's fields as CSV or
    Parquet) with the champion, as the service would. OUTPUT gets each listing's category,
    probabilities and model version; rows that cannot be scored go to OUTPUT's
    .rejected.csv with their line and why, and the exit status is then 3."""
    from mlflow.exceptions import MlflowException

    from mlops_lab.commands.score import task
    from mlops_lab.config import load_config

    _client_settings()
    try:
        config = load_config(config_path, tuned_params=False)
        rejected = task.run(config, dict(os.environ), task.ScoreOptions(**options))
    except MlflowException as error:
        _fail(_lost_server(error) or _refused(error) or str(error))
    except UserError as error:
        _fail(str(error))
    if rejected:
        sys.exit(SOME_ROWS_NOT_SCORED)


@main.command("replay")
@config_option
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The service.")
@click.option(
    "--part",
    type=click.Choice(PARTS),
    default="test",
    show_default=True,
    help="Which listings of the prepared table: the notebook's test or train part, or all.",
)
@click.option(
    "--where",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Only listings with this value, e.g. borough=Manhattan: a shifted sample. Repeatable.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which sample --limit takes.")
@click.option(
    "--batch-size", type=click.IntRange(1, 1000), default=100, show_default=True, help="Per POST."
)
@click.option("--feedback", is_flag=True, help="Then post each listing's true price to /feedback.")
@click.option(
    "--price-factor",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="With --feedback: send each true price times this, as if the market moved (a "
    "rehearsal of the loop).",
)
def replay(config_path: Path, **options: Any) -> None:
    """Send listings of the prepared table to a running service, as traffic to monitor: the test
    part as it is, or a shifted sample (--where), with their true prices as feedback."""
    from mlops_lab.commands.replay import task
    from mlops_lab.config import load_config

    try:
        config = load_config(config_path, tuned_params=False)
        replayed = task.run(config, dict(os.environ), task.ReplayOptions(**options))
    except UserError as error:
        _fail(str(error))
    click.echo(
        f"replayed {replayed.listings} listings: "
        + ", ".join(f"{name} {count}" for name, count in replayed.categories.items())
        + (f"; {replayed.feedback} true prices posted as feedback" if options["feedback"] else "")
    )


# `monitor`'s exit status when it raises an alert: drift or a quality drop that calls for
# retraining. 1 stays "monitor could not run".
RETRAINING_ADVISED = 3


@main.command("monitor")
@config_option
@click.option(
    "--since",
    default=None,
    metavar="TIME",
    help="Only predictions from then on: a span back from now (30m, 6h, 7d) or an ISO date or "
    "time (UTC unless it says otherwise).",
)
@click.option("--until", default=None, metavar="TIME", help="Only predictions before then.")
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=None,
    help="The most recent this many predictions (default: config.yaml monitoring.window_size).",
)
@click.option(
    "--model-uri",
    default=None,
    help="Whose predictions to judge; by default what `make serve` serves (MODEL_URI, else the "
    "champion).",
)
def monitor(config_path: Path, **options: Any) -> None:
    """Compare the served model's logged predictions with the training part (Evidently): drift
    of each field and of the predicted categories, and quality where feedback came in. Writes
    reports/monitoring/report.html and summary.json, logs both to MLflow, and exits 3 when
    an alert calls for retraining."""
    from mlflow.exceptions import MlflowException

    from mlops_lab.commands.monitor import task
    from mlops_lab.config import load_config

    _client_settings()
    try:
        config = load_config(config_path, tuned_params=False)
        summary = task.run(config, dict(os.environ), task.MonitorOptions(**options))
    except MlflowException as error:
        _fail(_lost_server(error) or _refused(error) or str(error))
    except UserError as error:
        _fail(str(error))
    for line in task.summary_lines(summary):
        click.echo(line)
    if summary["alerts"]:
        sys.exit(RETRAINING_ADVISED)


@main.command("harvest")
@config_option
def harvest(config_path: Path) -> None:
    """Turn the logged predictions that got feedback into labelled listings (the fields as the
    model took them, the latest truth sent), written to config.yaml's data.harvested_path for
    data_prep to add; dropped ones are counted by reason."""
    from mlops_lab.commands.harvest import task
    from mlops_lab.config import load_config

    try:
        config = load_config(config_path, tuned_params=False)
        harvested = task.run(config, dict(os.environ))
    except UserError as error:
        _fail(str(error))
    click.echo("\n".join(task.summary_lines(harvested)))


@main.command("loop")
@config_option
def loop(config_path: Path) -> None:
    """One turn of the loop: monitor; on an alert, harvest; when the labelled traffic is new,
    retrain as a DVC experiment (`dvc exp run --temp`: the working tree is left alone) and
    let the promote stage's gate judge it. Prints the decision as one JSON line, logs it to
    MLflow and posts it to loop.notify_url; exits 1 when a step failed."""
    from mlflow.exceptions import MlflowException

    from mlops_lab.config import load_config
    from mlops_lab.loop import task

    _client_settings()
    # Standard output is the decision's one line, for whatever reads it; not MLflow's run links.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    try:
        config = load_config(config_path, tuned_params=False)
        document, faultless = task.run(config, dict(os.environ))
    except MlflowException as error:
        _fail(_lost_server(error) or _refused(error) or str(error))
    except UserError as error:
        _fail(str(error))
    click.echo(task.decision_line(document))
    if not faultless:
        sys.exit(1)


@main.group("schedule")
def schedule() -> None:
    """The stack's scheduler, Prefect (docker compose --profile loop): its server, and the
    worker that runs `mlops-lab loop` nightly and on demand (docs/loop.md)."""


@schedule.command("server")
def schedule_server() -> None:
    """Prefect's server, its database and login from the stack's settings."""
    from mlops_lab.loop import scheduler_settings

    try:
        scheduler_settings.start_server(dict(os.environ))
    except UserError as error:
        _fail(str(error))


@schedule.command("worker")
@config_option
def schedule_worker(config_path: Path) -> None:
    """Register the loop's flow on the server, on config.yaml's loop.schedule, and run its runs
    in this checkout until stopped."""
    from mlops_lab.config import load_config
    from mlops_lab.loop import scheduler_settings

    try:
        config = load_config(config_path, tuned_params=False)
        os.environ.update(scheduler_settings.worker_settings(os.environ))
    except UserError as error:
        _fail(str(error))
    # Prefect reads its settings as it is imported: only now.
    from mlops_lab.loop import schedule as scheduling

    scheduling.serve_flow(config.loop.schedule, Path.cwd())


@main.command("rollback")
@config_option
@click.option(
    "--to",
    "version",
    default=None,
    metavar="VERSION",
    help="The version to make champion again; by default the latest before the champion that "
    "passed the promotion gate.",
)
@click.option("--reason", required=True, help="Why: kept on both versions in the registry.")
def rollback(config_path: Path, **options: Any) -> None:
    """Move the registry's champion alias back to an earlier version that passed the gate, with
    models/ in step. Running services serve it within serving.model_refresh_seconds."""
    from mlflow.exceptions import MlflowException

    from mlops_lab.commands.rollback import task
    from mlops_lab.config import load_config

    _client_settings()
    try:
        config = load_config(config_path, tuned_params=False)
        target = task.run(config, dict(os.environ), task.RollbackOptions(**options))
    except MlflowException as error:
        _fail(_lost_server(error) or _refused(error) or str(error))
    except UserError as error:
        _fail(str(error))
    click.echo(f"champion: v{target}")


@main.command("summary")
@config_option
def summary(config_path: Path) -> None:
    """What the last pipeline run made: its model, its test scores, the champion that serves."""
    from mlops_lab.commands.summary import task
    from mlops_lab.config import load_config

    try:
        lines = task.run(load_config(config_path, tuned_params=False))
    except UserError as error:
        _fail(str(error))
    click.echo("\n".join(lines))


@main.command("ui")
@config_option
@click.option("--port", default=5000, show_default=True, help="Where the UI listens.")
def ui(config_path: Path, port: int) -> None:
    """The MLflow UI on the store the stages use (the embedded one unless MLFLOW_TRACKING_URI
    names a server, whose own UI to open instead)."""
    from mlops_lab.config import load_config
    from mlops_lab.tracking.runs import resolve_tracking

    config = load_config(config_path, tuned_params=False)
    tracking = resolve_tracking(
        os.environ,
        Path.cwd(),
        config.tracking.embedded_store_dir,
        config.tracking.experiment_name,
        config.tracking.registered_model_name,
    )
    if tracking.artifact_location is None:
        _fail(f"runs are tracked on {tracking.uri}: open its own UI there")
    executable = Path(sys.executable).with_name("mlflow")
    os.execv(
        str(executable),
        [
            str(executable),
            "ui",
            "--backend-store-uri",
            tracking.uri,
            "--default-artifact-root",
            str(tracking.artifact_location),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
    )


@main.group("swarm")
def swarm() -> None:
    """The compose stack on a Docker Swarm: docker-compose.yml with docker-compose.swarm.yml
    layered on (docs/swarm.md, "More than one machine")."""


@swarm.command("render")
def swarm_render() -> None:
    """Print the stack file `docker stack deploy` would get, for this node."""
    from mlops_lab.commands.swarm import task

    try:
        click.echo(task.render(), nl=False)
    except UserError as error:
        _fail(str(error))


@swarm.command("deploy")
@click.option("--stack", default=None, help="The stack's name; by default compose's project name.")
@click.option("--build/--no-build", default=True, show_default=True, help="Build the images first.")
@click.option(
    "--timeout",
    "timeout_seconds",
    default=600.0,
    show_default=True,
    help="Seconds to wait for every service to run.",
)
def swarm_deploy(stack: str | None, build: bool, timeout_seconds: float) -> None:
    """Build the images, make .env's passwords Swarm secrets, deploy or update the stack, and
    wait until every service runs."""
    from mlops_lab.commands.swarm import task

    try:
        name = task.deploy(stack, build, timeout_seconds)
    except UserError as error:
        _fail(str(error))
    click.echo(f"stack {name}: running")
