"""Pure functions of `mlops-lab swarm`: docker-compose.yml, as `docker compose config` resolves
it with docker-compose.swarm.yml layered on, rewritten in the file format `docker stack deploy`
reads (compose file format 3), and the checks a deploy makes first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from mlops_lab.common.errors import UserError

STACK_FILE_VERSION = "3.8"
# What `docker stack deploy` refuses or ignores in a service: compose builds, orders starts and
# joins networks; Swarm restarts by each service's deploy.restart_policy and puts every service
# of a stack on one overlay network of its own.
LEFT_TO_COMPOSE = ("build", "depends_on", "profiles", "restart", "networks")
# The label of the node that holds the volumes of PostgreSQL and MLflow
# (docker-compose.swarm.yml's placement constraints).
STORAGE_LABEL = "mlops-lab.storage"


class SwarmError(UserError):
    """The stack cannot be rendered or deployed as things are; the message says what to do."""


def stack_file(compose: Mapping[str, Any], deploying_node: str) -> dict[str, Any]:
    """The stack file for compose's resolved model, host folders mounted on `deploying_node`."""
    services = {
        name: stack_service(name, service, deploying_node)
        for name, service in sorted(compose["services"].items())
    }
    return {
        "version": STACK_FILE_VERSION,
        "services": services,
        "volumes": dict(compose.get("volumes", {})),
        "secrets": {
            name: {"name": secret["name"], "external": True}
            for name, secret in sorted(compose.get("secrets", {}).items())
        },
    }


def stack_service(name: str, service: Mapping[str, Any], deploying_node: str) -> dict[str, Any]:
    """One service as a stack runs it: the same image, command, settings, secrets and volumes."""
    if not service.get("image"):
        raise SwarmError(
            f"the service {name!r} names no image: a swarm's nodes run images by name, so give "
            "it an `image:` in docker-compose.yml"
        )
    rewritten = {
        key: value
        for key, value in service.items()
        if key not in LEFT_TO_COMPOSE and value is not None
    }
    if "ports" in service:
        rewritten["ports"] = [published_on_each_node(port) for port in service["ports"]]
    if "volumes" in service:
        rewritten["volumes"] = [stack_mount(mount) for mount in service["volumes"]]
        if any(mount["type"] == "bind" for mount in service["volumes"]):
            rewritten["deploy"] = pinned_to(service.get("deploy", {}), deploying_node)
    return rewritten


def published_on_each_node(port: Mapping[str, Any]) -> dict[str, Any]:
    """A published port bound on the node that runs the task: the routing mesh is not used."""
    return {
        "target": int(port["target"]),
        "published": int(port["published"]),
        "protocol": port.get("protocol", "tcp"),
        "mode": "host",
    }


def stack_mount(mount: Mapping[str, Any]) -> dict[str, Any]:
    """A volume or bind mount without the options format 3 does not have."""
    return {key: mount[key] for key in ("type", "source", "target", "read_only") if key in mount}


def pinned_to(deploy: Mapping[str, Any], node: str) -> dict[str, Any]:
    """The deploy settings with the service held on `node`, where its host folders are."""
    placement = dict(deploy.get("placement", {}))
    placement["constraints"] = [*placement.get("constraints", []), f"node.hostname == {node}"]
    return {**deploy, "placement": placement}


def secret_variables(compose: Mapping[str, Any]) -> dict[str, str]:
    """Each secret's swarm name and the variable of .env that holds its value."""
    variables = {}
    for name, secret in sorted(compose.get("secrets", {}).items()):
        if "environment" not in secret:
            raise SwarmError(
                f"the secret {name!r} is not read from a variable: docker-compose.yml gives "
                "every secret as `environment: NAME`"
            )
        variables[secret["name"]] = secret["environment"]
    return variables


def missing_secret_values(
    variables: Mapping[str, str], environment: Mapping[str, str]
) -> list[str]:
    """The variables a new secret would be made from that are unset or empty."""
    return sorted({variable for variable in variables.values() if not environment.get(variable)})


def storage_node_to_label(nodes: Mapping[str, Mapping[str, str]]) -> str | None:
    """The node to label as storage: none when one is labelled; the only node of a one-node
    swarm; SwarmError when several nodes could be and none is chosen."""
    if any(labels.get(STORAGE_LABEL) == "true" for labels in nodes.values()):
        return None
    if len(nodes) == 1:
        return next(iter(nodes))
    raise SwarmError(
        f"no node is labelled {STORAGE_LABEL}=true, so PostgreSQL and MLflow have nowhere to "
        "keep their volumes: on a manager, run `docker node update --label-add "
        f"{STORAGE_LABEL}=true NODE` for the node that should hold them"
    )


class ServiceUpdate(NamedTuple):
    """A service's last update, as `docker service inspect` shows it."""

    state: str
    started: float  # seconds since the epoch
    message: str


# The states of an update the swarm is still carrying out, and of one it gave up.
UPDATE_UNDER_WAY = ("updating", "rollback_started")
UPDATE_GIVEN_UP = {
    "paused": "the update stopped half way",
    "rollback_completed": "the update failed and the swarm rolled it back",
    "rollback_paused": "the update failed and so did rolling it back",
}


def unconverged(
    replicas: Mapping[str, str], updates: Mapping[str, ServiceUpdate]
) -> dict[str, str]:
    """The services whose running tasks are fewer than they should be (`docker service ls`'s
    REPLICAS column, such as "1/3" or "0/1 (max 1 per node)"), or that are being updated."""
    waiting = {}
    for service, shown in replicas.items():
        running, _, wanted = shown.split(" ", 1)[0].partition("/")
        if not wanted or int(running) < int(wanted) or int(wanted) == 0:
            waiting[service] = shown
        elif service in updates and updates[service].state in UPDATE_UNDER_WAY:
            waiting[service] = f"{shown}, {updates[service].state}"
    return waiting


def failed_updates(updates: Mapping[str, ServiceUpdate], since: float) -> dict[str, str]:
    """The updates begun at or after `since` that the swarm gave up, with what it said."""
    return {
        service: f"{UPDATE_GIVEN_UP[update.state]} ({update.message})"
        for service, update in updates.items()
        if update.state in UPDATE_GIVEN_UP and update.started >= since
    }
