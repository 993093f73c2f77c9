"""swarm: the compose stack on a Docker Swarm. Renders docker-compose.yml (with
docker-compose.swarm.yml layered on) as a stack file, and deploys it: images built (and pushed
to IMAGE_REGISTRY when .env names one), the storage node labelled, the passwords of .env made
Swarm secrets, then `docker stack deploy`, waiting until every service runs."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Mapping
from typing import Any

import yaml

from mlops_lab.commands.swarm.transform import (
    STORAGE_LABEL,
    ServiceUpdate,
    SwarmError,
    failed_updates,
    missing_secret_values,
    secret_variables,
    stack_file,
    storage_node_to_label,
    unconverged,
)

log = logging.getLogger(__name__)

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.swarm.yml")
POLL_SECONDS = 2


def docker(*arguments: str, stdin: str | None = None, quiet: bool = True) -> str:
    """A docker command's output (or, not quiet, its output shown as it comes, and ""); a
    SwarmError with docker's own message when it fails."""
    captured = subprocess.PIPE if quiet else None
    try:
        result = subprocess.run(
            ["docker", *arguments], input=stdin, text=True, stdout=captured, stderr=captured
        )
    except FileNotFoundError as error:
        raise SwarmError("the docker command is not installed") from error
    if result.returncode != 0:
        said = (result.stderr or "").strip() or f"exit {result.returncode}, said above"
        raise SwarmError(f"`docker {' '.join(arguments[:3])}` failed: {said}")
    return result.stdout or ""


def compose(*arguments: str, quiet: bool = True) -> str:
    """`docker compose` on this checkout's two files, with the serve profile."""
    files = [part for name in COMPOSE_FILES for part in ("--file", name)]
    return docker("compose", *files, "--profile", "serve", *arguments, quiet=quiet)


def resolved_compose() -> dict[str, Any]:
    """The two compose files merged, .env's values filled in, paths made absolute."""
    return json.loads(compose("config", "--format", "json"))


def interpolation_environment() -> dict[str, str]:
    """The variables compose fills the files in from: .env, under this process's environment."""
    lines = compose("config", "--environment").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def this_node() -> str:
    """This engine's node name in the swarm; SwarmError unless it is a swarm manager."""
    swarm = json.loads(docker("info", "--format", "{{json .Swarm}}"))
    if swarm.get("LocalNodeState") != "active":
        raise SwarmError(
            "this Docker engine is not in a swarm: `docker swarm init` makes it the first "
            'manager (docs/swarm.md, "More than one machine")'
        )
    if not swarm.get("ControlAvailable"):
        raise SwarmError("this node is a swarm worker: deploy from a manager")
    return docker("info", "--format", "{{.Name}}").strip()


def render() -> str:
    """The stack file, as YAML, for the node this runs on."""
    stack = stack_file(resolved_compose(), this_node())
    return yaml.safe_dump(stack, sort_keys=False, default_flow_style=False)


def label_storage_node() -> None:
    """Label the only node of a one-node swarm as the storage node, if no node is labelled."""
    nodes = {}
    for node_id in docker("node", "ls", "--quiet").split():
        labels = json.loads(docker("node", "inspect", "--format", "{{json .Spec.Labels}}", node_id))
        nodes[node_id] = labels or {}
    chosen = storage_node_to_label(nodes)
    if chosen is not None:
        docker("node", "update", "--label-add", f"{STORAGE_LABEL}=true", chosen)
        log.info(
            "labelled this node %s=true: PostgreSQL and MLflow keep their data here", STORAGE_LABEL
        )


def create_secrets(compose_model: Mapping[str, Any], environment: Mapping[str, str]) -> None:
    """Each secret the stack names that the swarm lacks, made from its variable in .env."""
    variables = secret_variables(compose_model)
    existing = set(docker("secret", "ls", "--format", "{{.Name}}").split())
    wanted = {name: variable for name, variable in variables.items() if name not in existing}
    missing = missing_secret_values(wanted, environment)
    if missing:
        raise SwarmError(
            f"set {', '.join(missing)} in .env: the swarm's secrets are made from them"
        )
    for name, variable in wanted.items():
        docker("secret", "create", name, "-", stdin=environment[variable])
        log.info("secret %s made from .env's %s", name, variable)


def service_states(stack: str) -> tuple[dict[str, str], dict[str, ServiceUpdate]]:
    """Each service's REPLICAS column, and the last update of those that had one."""
    listed = docker(
        *("service", "ls", "--filter", f"label=com.docker.stack.namespace={stack}"),
        *("--format", "{{.Name}} {{.Replicas}}"),
    )
    replicas = dict(line.split(" ", 1) for line in listed.splitlines() if line)
    if not replicas:
        return replicas, {}
    shown = docker(
        *("service", "inspect", "--format"),
        "{{.Spec.Name}}|{{if .UpdateStatus}}{{.UpdateStatus.State}}|"
        "{{.UpdateStatus.StartedAt.Unix}}|{{.UpdateStatus.Message}}{{end}}",
        *replicas,
    )
    updates = {}
    for line in shown.splitlines():
        name, _, rest = line.partition("|")
        if rest:
            state, started, message = rest.split("|", 2)
            updates[name] = ServiceUpdate(state, float(started), message)
    return replicas, updates


def wait_until_running(stack: str, timeout_seconds: float) -> None:
    """Return once every service of the stack has all its tasks running (healthy, where it
    has a healthcheck) and no update under way; SwarmError naming what has not after
    `timeout_seconds`, or an update begun now that the swarm rolled back."""
    began = time.time() - POLL_SECONDS
    deadline = time.monotonic() + timeout_seconds
    shown_last: dict[str, str] = {}
    while True:
        replicas, updates = service_states(stack)
        failed = failed_updates(updates, began)
        if failed:
            raise SwarmError(
                "\n".join(f"{name}: {said}\n{task_errors(name)}" for name, said in failed.items())
            )
        waiting = unconverged(replicas, updates)
        if not waiting:
            log.info("stack %s: every service runs (%s)", stack, ", ".join(sorted(replicas)))
            return
        if waiting != shown_last:
            log.info("waiting for: %s", ", ".join(f"{s} {n}" for s, n in sorted(waiting.items())))
            shown_last = waiting
        if time.monotonic() > deadline:
            raise SwarmError(not_running_message(stack, waiting, timeout_seconds))
        time.sleep(POLL_SECONDS)


def task_errors(service: str) -> str:
    """The swarm's last word on a service's most recent tasks that ended."""
    return docker(
        *("service", "ps", service, "--no-trunc", "--filter", "desired-state=shutdown"),
        *("--format", "  {{.Name}} {{.Image}}: {{.CurrentState}} {{.Error}}"),
    ).rstrip()


def not_running_message(stack: str, waiting: Mapping[str, str], timeout_seconds: float) -> str:
    """What did not start in time, with the swarm's last word on each of its tasks."""
    tasks = docker(
        *("stack", "ps", stack, "--no-trunc", "--filter", "desired-state=running"),
        *("--format", "{{.Name}}: {{.CurrentState}} {{.Error}}"),
    )
    hint = ""
    if any(name.endswith("_prediction_service") for name in waiting):
        hint = (
            " A prediction replica is ready once the registry's model has a champion: run "
            "`dvc repro` in the lab first."
        )
    return (
        f"not running after {timeout_seconds:.0f} s: "
        f"{', '.join(f'{s} {n}' for s, n in sorted(waiting.items()))}.{hint}\n{tasks.strip()}"
    )


def rebuilt_services(stack: str, services: Mapping[str, Any]) -> list[str]:
    """The services whose containers on this node run an older build of their image than the
    one its tag names here now. Without a registry the stack names images by tag alone, so a
    rebuild under the same tag changes nothing `docker stack deploy` compares."""
    rebuilt = []
    for name, service in services.items():
        containers = docker(
            *("ps", "--quiet", "--filter"), f"label=com.docker.swarm.service.name={stack}_{name}"
        ).split()
        if not containers:
            continue
        current = docker("image", "inspect", "--format", "{{.Id}}", service["image"]).strip()
        running = docker("inspect", "--format", "{{.Image}}", *containers).split()
        if set(running) - {current}:
            rebuilt.append(name)
    return rebuilt


def deploy(stack: str | None, build: bool, timeout_seconds: float) -> str:
    """Deploy (or update) the stack and wait for it; the stack's name."""
    node = this_node()
    compose_model = resolved_compose()
    environment = interpolation_environment()
    stack = stack or compose_model["name"]
    registry = environment.get("IMAGE_REGISTRY", "")
    if build:
        log.info("building the stack's images")
        compose("build", quiet=False)
        if registry:
            log.info("pushing them to %s", registry)
            compose("push", quiet=False)
    label_storage_node()
    create_secrets(compose_model, environment)
    stack_model = stack_file(compose_model, node)
    rebuilt = [] if registry else rebuilt_services(stack, stack_model["services"])
    # Several hosts pull from the registry by digest; one host runs its own images as tagged.
    resolve = "always" if registry else "never"
    docker(
        *("stack", "deploy", "--detach=true", "--resolve-image", resolve),
        *("--compose-file", "-", stack),
        stdin=yaml.safe_dump(stack_model, sort_keys=False),
        quiet=False,
    )
    for name in rebuilt:
        log.info("%s: rolling its replicas onto the image rebuilt here", name)
        docker("service", "update", "--detach", "--force", "--no-resolve-image", f"{stack}_{name}")
    wait_until_running(stack, timeout_seconds)
    return stack
