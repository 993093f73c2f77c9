"""`make setup` as a user runs it: the environment is exactly the lock, and a package the lock
drops leaves the environment at the next `make setup`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from locks import normalized, pinned
from projects import PROJECT_ROOT
from waiting import skip_or_fail

pytestmark = pytest.mark.integration


def locked(lock: Path) -> set[str]:
    """name==version for every package a lock pins."""
    return {f"{name}=={version}" for name, version in pinned(lock).items()}


def installed(checkout: Path, python: Path) -> set[str]:
    """name==version for every package in an environment, the project's own left out."""
    frozen = subprocess.run(
        [str(checkout / ".uv" / "bin" / "uv"), "pip", "freeze", "--python", str(python)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # A package installed from a folder freezes as `name @ file:///…`, without a version.
    pairs = (re.split(r"==| @ ", line, maxsplit=1) for line in frozen if re.search("==| @ ", line))
    return {f"{normalized(name)}=={version}" for name, version in pairs if name != "mlops-lab"}


def make(checkout: Path, target: str) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    result = subprocess.run(
        ["make", target], cwd=checkout, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_the_test_environment_is_exactly_the_lock():
    if not (PROJECT_ROOT / ".uv" / "bin" / "uv").exists():
        skip_or_fail("this environment was not made by `make setup`")
    assert installed(PROJECT_ROOT, Path(sys.executable)) == locked(
        PROJECT_ROOT / "requirements" / "dev.lock"
    )


def test_make_setup_removes_a_package_the_lock_does_not_list(tmp_path):
    checkout = tmp_path / "lab"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(checkout)], check=True)
    make(checkout, "setup")
    # A package of the user's own, installed by hand: not in the lock.
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "pyproject.toml").write_text(
        '[project]\nname = "stray-package"\nversion = "1.0"\n'
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    python = checkout / ".venv" / "bin" / "python"
    uv = str(checkout / ".uv" / "bin" / "uv")
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps", str(stray)],
        check=True,
    )
    assert any(line.startswith("stray-package==") for line in installed(checkout, python))
    # As after a `git pull` that changes the lock.
    os.utime(checkout / "requirements" / "dev.lock")
    make(checkout, "setup")
    assert installed(checkout, python) == locked(checkout / "requirements" / "dev.lock")
    imported = subprocess.run(
        [str(python), "-c", "import mlops_lab, dvc, mlflow"], capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr
