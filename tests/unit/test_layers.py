"""The package's layers, read from its own imports: stages stand on the kernel and never on each
other (kedro's rule: pipelines never import each other's nodes), the kernel stands on nothing
above it, and only the smoke stage and batch scoring, which load the model and answer as the
service does, use the service."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "mlops_lab"
KERNEL = "kernel"
SERVICE = "service"
STAGES = {path.name for path in PACKAGE.iterdir() if path.is_dir() and (path / "task.py").is_file()}
# The entry point wires everything together.
ENTRY_POINTS = {"cli.py", "__init__.py"}
# Where models saved by earlier versions say their classes are: names for kernel classes.
EARLIER_NAMES = {"features.py", "blend.py", "decision.py"}
# Stages that may use the service besides the kernel: each answers exactly as it does.
SERVICE_USERS = {"prediction_app", "scoring", "monitoring"}


def layer_of(module: str) -> str:
    """The top-level part of mlops_lab a dotted module name belongs to."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every mlops_lab module the file imports, with the line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.startswith("mlops_lab.")]
    return found


def allowed(layer: str) -> set[str]:
    """The layers a module of `layer` may import."""
    if layer == KERNEL or layer in EARLIER_NAMES:
        return {KERNEL}
    if layer == SERVICE:
        return {KERNEL, SERVICE}
    if layer in STAGES:
        return {KERNEL, layer} | ({SERVICE} if layer in SERVICE_USERS else set())
    raise AssertionError(f"{layer} is neither the kernel, the service nor a stage")


def modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in ENTRY_POINTS
    ]


def test_the_package_has_the_expected_layers():
    assert {"data_prep", "training", "explainability", "prediction_app", "promotion"} <= STAGES
    assert {"tuning", "ablation"} <= STAGES
    assert (PACKAGE / KERNEL).is_dir() and (PACKAGE / SERVICE).is_dir()


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_it_must_not(path):
    layer = path.relative_to(PACKAGE).parts[0]
    wrong = [
        f"line {line}: {name}"
        for line, name in imports_of(path)
        if layer_of(name) not in allowed(layer)
    ]
    assert not wrong, f"{path.relative_to(PACKAGE)} ({layer}) imports " + "; ".join(wrong)


def test_the_checker_sees_a_cross_stage_import(tmp_path):
    module = tmp_path / "task.py"
    module.write_text("from mlops_lab.training.transform import choose_winner\n")
    assert [layer_of(name) for _, name in imports_of(module)] == ["training"]
    assert "training" not in allowed("tuning")
    assert SERVICE not in allowed(KERNEL)
