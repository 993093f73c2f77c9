import pytest

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

# A model as `docker compose config --format json` gives it: resolved, paths absolute.
COMPOSE = {
    "name": "lab",
    "networks": {"default": {"name": "lab_default", "ipam": {}}},
    "x-lab-image": {"image": "lab:latest"},
    "services": {
        "lab": {
            "image": "lab:latest",
            "build": {"context": "/home/ada/lab", "target": "lab"},
            "command": ["sleep", "infinity"],
            "entrypoint": None,
            "depends_on": {"tracking": {"condition": "service_healthy", "required": True}},
            "networks": {"default": None},
            "restart": "unless-stopped",
            "ports": [
                {
                    "mode": "ingress",
                    "host_ip": "127.0.0.1",
                    "target": 8000,
                    "published": "8001",
                    "protocol": "tcp",
                }
            ],
            "volumes": [
                {
                    "type": "bind",
                    "source": "/home/ada/lab",
                    "target": "/app",
                    "bind": {"create_host_path": True},
                },
                {"type": "volume", "source": "remote", "target": "/remote", "volume": {}},
            ],
            "deploy": {"endpoint_mode": "dnsrr", "placement": {}},
        },
        "tracking": {
            "image": "tracking:latest",
            "profiles": ["serve"],
            "environment": {"PORT": "5000"},
            "secrets": [{"source": "db_password", "target": "/run/secrets/db_password"}],
            "healthcheck": {"test": ["CMD", "true"], "interval": "3s", "start_period": "2m0s"},
            "deploy": {"placement": {"constraints": ["node.labels.mlops-lab.storage == true"]}},
        },
    },
    "volumes": {"remote": {"name": "lab_remote"}},
    "secrets": {"db_password": {"name": "lab_db_password", "environment": "DB_PASSWORD"}},
}


def test_what_only_compose_reads_is_left_out_and_the_rest_is_kept_as_it_is():
    stack = stack_file(COMPOSE, "node-1")
    assert stack["version"] == "3.8"
    assert set(stack) == {"version", "services", "volumes", "secrets"}
    lab = stack["services"]["lab"]
    assert not {"build", "depends_on", "networks", "restart", "entrypoint"} & set(lab)
    assert lab["command"] == ["sleep", "infinity"]
    tracking = stack["services"]["tracking"]
    assert "profiles" not in tracking
    for key in ("image", "environment", "secrets", "healthcheck"):
        assert tracking[key] == COMPOSE["services"]["tracking"][key]
    assert tracking["deploy"] == COMPOSE["services"]["tracking"]["deploy"]


def test_volumes_keep_their_names_so_a_stack_finds_the_data_compose_left():
    assert stack_file(COMPOSE, "node-1")["volumes"] == {"remote": {"name": "lab_remote"}}


def test_ports_are_published_on_the_node_that_runs_the_task():
    (port,) = stack_file(COMPOSE, "node-1")["services"]["lab"]["ports"]
    assert port == {"target": 8000, "published": 8001, "protocol": "tcp", "mode": "host"}


def test_a_service_that_mounts_a_host_folder_stays_on_the_node_it_was_deployed_from():
    lab = stack_file(COMPOSE, "node-1")["services"]["lab"]
    assert lab["deploy"]["placement"]["constraints"] == ["node.hostname == node-1"]
    assert lab["deploy"]["endpoint_mode"] == "dnsrr"
    assert lab["volumes"] == [
        {"type": "bind", "source": "/home/ada/lab", "target": "/app"},
        {"type": "volume", "source": "remote", "target": "/remote"},
    ]
    assert "node.hostname" not in str(stack_file(COMPOSE, "node-1")["services"]["tracking"])


def test_secrets_are_the_swarms_own_made_from_env():
    assert stack_file(COMPOSE, "node-1")["secrets"] == {
        "db_password": {"name": "lab_db_password", "external": True}
    }
    assert secret_variables(COMPOSE) == {"lab_db_password": "DB_PASSWORD"}
    assert missing_secret_values({"lab_db_password": "DB_PASSWORD"}, {"DB_PASSWORD": ""}) == [
        "DB_PASSWORD"
    ]
    assert missing_secret_values({"lab_db_password": "DB_PASSWORD"}, {"DB_PASSWORD": "x"}) == []


def test_a_service_without_an_image_name_cannot_run_on_a_swarm():
    built_only = {**COMPOSE, "services": {"tracking": {"build": {"context": "."}}}}
    with pytest.raises(SwarmError, match="'tracking' names no image"):
        stack_file(built_only, "node-1")


def test_a_secret_from_a_file_is_named_as_not_made_from_env():
    from_file = {**COMPOSE, "secrets": {"key": {"name": "lab_key", "file": "/tmp/key"}}}
    with pytest.raises(SwarmError, match="'key' is not read from a variable"):
        secret_variables(from_file)


def test_the_storage_node_is_labelled_only_when_it_is_the_one_choice():
    assert storage_node_to_label({"a": {}}) == "a"
    assert storage_node_to_label({"a": {}, "b": {STORAGE_LABEL: "true"}}) is None
    with pytest.raises(SwarmError, match="docker node update --label-add"):
        storage_node_to_label({"a": {}, "b": {}})


def test_a_service_runs_once_all_its_tasks_do_and_its_update_is_over():
    shown = {"db": "1/1", "app": "2/3", "door": "1/1 (max 1 per node)", "idle": "0/0"}
    assert unconverged(shown, {}) == {"app": "2/3", "idle": "0/0"}
    updates = {
        "db": ServiceUpdate("updating", 100.0, "update in progress"),
        "door": ServiceUpdate("completed", 100.0, "update completed"),
    }
    assert unconverged(shown, updates) == {"app": "2/3", "idle": "0/0", "db": "1/1, updating"}


def test_only_an_update_given_up_since_the_deploy_began_is_a_failure():
    updates = {
        "app": ServiceUpdate("rollback_completed", 100.0, "rollback completed"),
        "door": ServiceUpdate("paused", 50.0, "update paused"),
        "db": ServiceUpdate("completed", 100.0, "update completed"),
    }
    assert failed_updates(updates, since=90.0) == {
        "app": "the update failed and the swarm rolled it back (rollback completed)"
    }
