import pytest

from mlops_lab.loop.schedule import decision_markdown, decision_of
from mlops_lab.loop.scheduler_settings import ScheduleError, server_settings, worker_settings

STACK = {
    "PREFECT_DB_URI": "postgresql+asyncpg://prefect@postgres:5432/prefect",
    "PREFECT_DB_PASSWORD": "p@ss/word",
    "SCHEDULER_USER": "admin",
    "SCHEDULER_PASSWORD": "s3cret:with-colon",
    "PREFECT_API_URL": "http://scheduler:4200/api",
}


def test_the_server_gets_its_database_with_the_password_put_in_and_its_login():
    assert server_settings(STACK) == {
        "PREFECT_API_DATABASE_CONNECTION_URL": (
            "postgresql+asyncpg://prefect:p%40ss%2Fword@postgres:5432/prefect"
        ),
        "PREFECT_SERVER_API_AUTH_STRING": "admin:s3cret:with-colon",
    }
    assert worker_settings(STACK) == {"PREFECT_API_AUTH_STRING": "admin:s3cret:with-colon"}


@pytest.mark.parametrize("missing", ["PREFECT_DB_URI", "SCHEDULER_PASSWORD"])
def test_a_missing_setting_is_named(missing):
    with pytest.raises(ScheduleError, match=f"{missing} is not set"):
        server_settings({name: value for name, value in STACK.items() if name != missing})


def test_the_decision_is_the_last_json_line_of_the_loops_output():
    lines = ["18:53:22 INFO monitor: window …", '{"decision": "no alert", "reason": "r"}', ""]
    assert decision_of(lines) == {"decision": "no alert", "reason": "r"}
    with pytest.raises(ScheduleError, match="printed no decision"):
        decision_of(["error: the store is down"])


def test_the_run_page_shows_the_decision_and_the_scores():
    shown = decision_markdown(
        {
            "decision": "retrained and promoted",
            "reason": "v2 becomes the champion",
            "seconds": 54.3,
            "scores": {"measure": "m", "recent_traffic": {"challenger": 0.85, "champion": 0.79}},
        }
    )
    assert "| decision | **retrained and promoted** |" in shown
    assert "| recent_traffic | challenger 0.85, champion 0.79 |" in shown
