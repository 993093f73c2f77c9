"""The token /feedback takes: from the environment, else made once into a file."""

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from mlops_lab.common.errors import UserError
from mlops_lab.serving.feedback_token import feedback_token


def test_the_variable_wins_and_no_file_is_made(tmp_path):
    token = feedback_token({"FEEDBACK_TOKEN": " given "}, tmp_path / "token", create=True)
    assert (token.value, token.source) == ("given", "FEEDBACK_TOKEN")
    assert not (tmp_path / "token").exists()


def test_a_token_is_made_once_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "mlruns" / "feedback-token"
    first = feedback_token({}, path, create=True)
    assert len(first.value) >= 40 and first.source == str(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert feedback_token({}, path, create=True) == first
    assert feedback_token({}, path, create=False) == first
    assert list(path.parent.iterdir()) == [path]


def made(path: Path) -> str:
    return feedback_token({}, path, create=True).value


def test_services_starting_at_once_agree_on_one_token(tmp_path):
    path = tmp_path / "feedback-token"
    with ProcessPoolExecutor(4) as pool:
        tokens = set(pool.map(made, [path] * 16))
    assert tokens == {path.read_text().strip()}


def test_no_token_to_read_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="set FEEDBACK_TOKEN, or start the service once"):
        feedback_token({}, tmp_path / "feedback-token", create=False)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        feedback_token({}, tmp_path / "empty", create=True)
