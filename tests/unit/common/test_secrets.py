import pytest

from mlops_lab.common.secrets import SecretFileError, passwords_from_files, with_password


def test_a_password_file_stands_for_its_variable(tmp_path):
    secret = tmp_path / "lab_password"
    secret.write_text("s3cret:/@?#%\n")
    assert passwords_from_files({"MLFLOW_TRACKING_PASSWORD_FILE": str(secret)}) == {
        "MLFLOW_TRACKING_PASSWORD": "s3cret:/@?#%"
    }
    assert passwords_from_files({}) == {}


@pytest.mark.parametrize(
    ("environment", "problem"),
    [
        ({"MLFLOW_TRACKING_PASSWORD_FILE": "/nowhere/file"}, "No such file or directory"),
        (
            {"MLFLOW_TRACKING_PASSWORD_FILE": "/dev/null", "MLFLOW_TRACKING_PASSWORD": "x"},
            "both MLFLOW_TRACKING_PASSWORD and MLFLOW_TRACKING_PASSWORD_FILE are set",
        ),
        ({"OPTUNA_STORAGE_PASSWORD_FILE": "/dev/null"}, "OPTUNA_STORAGE_PASSWORD_FILE=/dev/null"),
    ],
)
def test_a_password_file_that_cannot_be_used_is_named(environment, problem):
    with pytest.raises(SecretFileError, match=problem):
        passwords_from_files(environment)


def test_the_password_goes_into_the_uri_url_encoded():
    uri = "postgresql+psycopg2://optuna@postgres:5432/optuna"
    assert (
        with_password(uri, "p@ss:w/rd%")
        == "postgresql+psycopg2://optuna:p%40ss%3Aw%2Frd%25@postgres:5432/optuna"
    )
    with pytest.raises(SecretFileError, match="must name a user and no password"):
        with_password("postgresql://optuna:old@postgres/optuna", "new")
