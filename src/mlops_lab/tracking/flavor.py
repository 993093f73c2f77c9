"""The flavor the models are logged with (`mlflow.models.Model.log(flavor=...)`): scikit-learn's,
whose pyfunc answers in full (kernel/pyfunc.py) instead of with the category alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.sklearn
from mlflow.models import Model as MlflowModel
from mlflow.pyfunc import FLAVOR_NAME as PYFUNC_FLAVOR
from mlflow.pyfunc import MAIN as LOADER_MODULE_KEY

from mlops_lab.kernel import pyfunc


def save_model(path: str, mlflow_model: MlflowModel, sk_model: Any, **options: Any) -> None:
    """Save as `mlflow.sklearn.save_model` does, then point the pyfunc flavor at our loader."""
    mlflow.sklearn.save_model(sk_model, path, mlflow_model=mlflow_model, **options)
    mlflow_model.flavors[PYFUNC_FLAVOR][LOADER_MODULE_KEY] = pyfunc.__name__
    mlflow_model.save(str(Path(path) / "MLmodel"))
