import sys

import mlflow

from mlops_lab.kernel.modelling import SKOPS_TRUSTED_TYPES
from mlops_lab.tracking.registry import load_logged_model, model_code


def test_loading_a_model_leaves_the_import_path_to_the_installed_package(boosted, tmp_path):
    directory = tmp_path / "model"
    mlflow.sklearn.save_model(
        boosted,
        str(directory),
        # As training logs it: with the kernel's modules, for where mlops-lab is not installed.
        code_paths=[str(model_code(tmp_path / "staging"))],
        pip_requirements=[],
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )
    before = list(sys.path)
    model = load_logged_model(str(directory))
    assert sys.path == before
    assert list(model.classes_) == list(boosted.classes_)
