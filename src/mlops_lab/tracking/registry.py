"""The model registry: how a model is packaged and registered, and who holds which alias.

Training registers every run's winner without an alias. The pipeline's last stage, promote,
moves `champion` to it only once it has answered through the serving path and beaten the
champion on the same test part; otherwise it gets `challenger`.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
import yaml
from mlflow.exceptions import MlflowException
from mlflow.models import Model as MlflowModel
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

import mlops_lab
from mlops_lab.common.files import replace_directory_atomically, write_json_atomically
from mlops_lab.kernel.contract import answer_column_names
from mlops_lab.kernel.modelling import SKOPS_TRUSTED_TYPES, Model
from mlops_lab.kernel.pyfunc import CATEGORIES_KEY
from mlops_lab.tracking import flavor

CHAMPION = "champion"
CHALLENGER = "challenger"
# Set by promote on a version it makes champion: only those may be rolled back to.
GATE_TAG = "mlops_lab.gate"
GATE_PASSED = "passed"
# A version that passed the gate while promotion required approval, and the champion it beat.
APPROVAL_TAG = "mlops_lab.approval"
AWAITING_APPROVAL = "awaiting"
APPROVED = "approved"
JUDGED_AGAINST_TAG = "mlops_lab.judged_against"
# Set by rollback on the version it leaves and the one it goes back to: who, when and why.
ROLLBACK_TAG = "mlops_lab.rollback"
# What loading and serving the model needs: these kernel modules travel with the model
# (`code_paths`) and these packages are its requirements, so it loads and answers where
# mlops-lab is not installed.
MODEL_MODULES = ("listing", "contract", "features", "decision", "blend", "routing", "pyfunc")
MODEL_PACKAGES = ("mlflow", "numpy", "pandas", "pydantic", "scikit-learn", "scipy", "skops")


def signature(field_types: dict[str, tuple[str, bool]], categories: list[str]) -> ModelSignature:
    """The model's input fields (which are required) and its answer's columns."""
    # Numbers as "any" type: MLflow refuses integers for a double column ("Can not safely convert
    # int64 to float64"), and callers send counts as integers. The model's predict checks every
    # value against the API's contract instead.
    inputs = Schema(
        [
            ColSpec(AnyType() if kind in ("double", "any") else kind, name, required=required)
            for name, (kind, required) in field_types.items()
        ]
    )
    columns = answer_column_names(categories)
    outputs = Schema([ColSpec("string", columns[0]), *(ColSpec("double", c) for c in columns[1:])])
    return ModelSignature(inputs=inputs, outputs=outputs)


def model_requirements() -> list[str]:
    """The pinned packages a process needs to load and run the model."""
    return [f"{name}=={version(name)}" for name in MODEL_PACKAGES]


def model_code(staging: Path) -> Path:
    """A copy of the package holding only the modules a saved model needs, under `staging`."""
    package = Path(mlops_lab.__file__).parent
    target = staging / package.name
    (target / "kernel").mkdir(parents=True)
    shutil.copy2(package / "__init__.py", target / "__init__.py")
    for module in ("__init__", *MODEL_MODULES):
        shutil.copy2(package / "kernel" / f"{module}.py", target / "kernel" / f"{module}.py")
    return target


def log_and_register(
    model: Model,
    model_name: str,
    input_example: pd.DataFrame,
    field_types: dict[str, tuple[str, bool]],
    categories: list[str],
) -> str:
    """Log the model to the active run with its code and pinned requirements, register it as a
    new version of `model_name` (no alias yet) and return the version."""
    with tempfile.TemporaryDirectory(prefix="mlops-lab-model-code-") as staging:
        info = MlflowModel.log(
            # Named by `name`, as MLflow 3 asks; the argument is positional still.
            artifact_path=None,
            name="model",
            flavor=flavor,
            sk_model=model,
            signature=signature(field_types, categories),
            metadata={CATEGORIES_KEY: categories},
            input_example=input_example,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            code_paths=[str(model_code(Path(staging)))],
            # Stated, not inferred: inference re-loads the model in a subprocess (~8 s).
            pip_requirements=model_requirements(),
            registered_model_name=model_name,
        )
    return str(info.registered_model_version)


def alias_uri(model_name: str, alias: str) -> str:
    """The registry URI of whichever version holds an alias when it is loaded."""
    return f"models:/{model_name}@{alias}"


def version_uri(model_name: str, model_version: str) -> str:
    """The registry URI of one version: pinned, so an alias moving cannot change it."""
    return f"models:/{model_name}/{model_version}"


def alias_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """The version that holds an alias now, or None (no such model, or no such alias)."""
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    found = registered.aliases.get(alias)
    return None if found is None else str(found)


def version_tag(client: MlflowClient, model_name: str, model_version: str, tag: str) -> str | None:
    """One tag of a registered version, or None (no such model, version or tag)."""
    try:
        registered = client.get_model_version(model_name, model_version)
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    return registered.tags.get(tag)


def load_logged_model(uri: str) -> Model:
    """A logged model, loaded as a scikit-learn model by this installed package's code.

    MLflow puts the model's copy of our code (`code_paths`, the kernel only) first on sys.path,
    so that it loads where mlops-lab is not installed. Here it is installed; left there, the
    copy would hide the rest of the package from every process started afterwards (training's
    worker processes failed with "No module named 'mlops_lab.stages.training'")."""
    path = list(sys.path)
    try:
        return mlflow.sklearn.load_model(uri)
    finally:
        sys.path = path


def load_version(model_name: str, model_version: str) -> Model:
    """One registered version, loaded as a scikit-learn model."""
    return load_logged_model(version_uri(model_name, model_version))


def download_version(model_name: str, model_version: str, target: Path) -> None:
    """Replace the folder `target` with one registered version's files, all at once."""
    replace_directory_atomically(
        target,
        lambda path: mlflow.artifacts.download_artifacts(
            artifact_uri=version_uri(model_name, model_version), dst_path=str(path)
        ),
    )


def make_champion(client: MlflowClient, model_name: str, model_version: str, folder: Path) -> None:
    """Give a version the champion alias, with its files in the champion folder: the alias
    moves once the files are here, and the folder is swapped in only after, so a failure on
    the way leaves both as they were."""

    def fill(path: Path) -> None:
        mlflow.artifacts.download_artifacts(
            artifact_uri=version_uri(model_name, model_version), dst_path=str(path)
        )
        client.set_registered_model_alias(model_name, CHAMPION, model_version)

    replace_directory_atomically(folder, fill)


def champion_entry(model_name: str, model_version: str, folder: Path) -> dict[str, str]:
    """registration.json's champion: its version, its registry URI and the folder it is in."""
    return {
        "version": model_version,
        "model_uri": version_uri(model_name, model_version),
        "local_path": str(folder),
    }


def record_champion(
    registration_path: Path,
    model_name: str,
    model_version: str,
    folder: Path,
    previous: str | None,
    how: dict[str, object],
) -> None:
    """Rewrite registration.json for a champion set by a person (an approval, a rollback):
    the champion, the one before, and `how` it changed; the last promotion's record stays."""
    registration = json.loads(registration_path.read_text()) if registration_path.is_file() else {}
    registration.update(
        {
            "model_name": model_name,
            "champion": champion_entry(model_name, model_version, folder),
            "previous_champion": previous,
            **how,
        }
    )
    write_json_atomically(registration_path, registration)


def local_version(model_dir: Path) -> tuple[str, str] | None:
    """Registered name and version of a downloaded model folder, or None if it holds none."""
    meta = model_dir / "registered_model_meta"
    if not meta.is_file():
        return None
    fields = yaml.safe_load(meta.read_text())
    return str(fields["model_name"]), str(fields["model_version"])


def run_of_local_model(model_dir: Path) -> str | None:
    """The id of the run that logged a downloaded model folder's model, or None."""
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        return None
    return yaml.safe_load(mlmodel.read_text()).get("run_id")
