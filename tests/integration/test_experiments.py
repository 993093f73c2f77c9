"""The experiment docs/pipeline.md shows, run with DVC as a user would: DVC rewrites
config.yaml, and what changes is the one line asked for, every comment and the layout kept."""

import re

import pytest
from projects import PROJECT_ROOT, LabProject

pytestmark = pytest.mark.integration

# Where `dvc exp run --queue` keeps a queued experiment: a commit of the workspace as DVC
# rewrote it, made the same way as for a run in the workspace.
QUEUED = "refs/exps/celery/stash"


def documented_override() -> str:
    """The `-S` value of the `dvc exp run` example in docs/pipeline.md."""
    text = (PROJECT_ROOT / "docs" / "pipeline.md").read_text()
    found = re.search(r"^dvc exp run -S '([^']+)'", text, re.MULTILINE)
    assert found, "docs/pipeline.md shows no `dvc exp run -S '...'` example"
    return found.group(1)


def test_the_documented_experiment_changes_one_line_of_config_yaml(tmp_path):
    override = documented_override()
    path, _, assignment = override.partition(":")
    key, _, value = assignment.partition("=")
    project = LabProject(tmp_path / "lab")
    queued = project.run(["dvc", "exp", "run", "--queue", "-S", override])
    assert queued.returncode == 0, queued.stdout + queued.stderr
    changed = project.run(["git", "diff", "--numstat", "HEAD", QUEUED, "--", path])
    assert changed.stdout.split()[:2] == ["1", "1"], changed.stdout
    diff = project.run(["git", "diff", "-U0", "HEAD", QUEUED, "--", path]).stdout
    name = re.escape(key.rsplit(".", 1)[1])
    assert re.search(rf"^\+ +{name}: {re.escape(value)}$", diff, re.MULTILINE), diff
    # DVC reports it as one parameter changed, named in full.
    params = project.run(["dvc", "params", "diff", "HEAD", QUEUED])
    assert params.returncode == 0, params.stderr
    rows = [line.split() for line in params.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 1 and rows[0][:2] == [path, key] and rows[0][-1] == value, params.stdout
    # The user's workspace is as it was.
    assert project.run(["git", "status", "--porcelain", "--", path]).stdout == ""
