"""Each stage in dvc.yaml depends on exactly the code it runs: its `deps` under src/ cover every
module its task imports (directly or through other modules), and nothing else. So a change to
the service, the prediction log or the compiled path reruns no training stage, and a change to
the model's code reruns every stage it can change. A candidate's cache key hashes exactly the
code that decides what a trained model is."""

import ast
from pathlib import Path

import pytest
import yaml
from projects import PROJECT_ROOT

from mlops_lab.stages.training.task import TRAINING_CODE

SOURCE = PROJECT_ROOT / "src"
PACKAGE = SOURCE / "mlops_lab"
# The entry point runs every stage, and only wires it: it is no stage's dependency.
ENTRY_POINT = PACKAGE / "cli.py"


def module_path(module: str) -> Path | None:
    """The file of a dotted mlops_lab module, or None if it names no module of ours."""
    base = SOURCE.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[Path]:
    """The files of the mlops_lab modules a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {module_path(name) for name in names if name.startswith("mlops_lab")}
    return found - {None}


def is_only_a_docstring(path: Path) -> bool:
    """Whether a file holds nothing but its docstring (a package's __init__.py)."""
    body = ast.parse(path.read_text()).body
    return len(body) == 1 and isinstance(body[0], ast.Expr)


def code_run_by(module: str) -> set[Path]:
    """Every file a module runs when imported: itself and what it imports, transitively, but
    the packages' __init__.py files (each holds only its docstring: checked below)."""
    seen: set[Path] = set()
    waiting = [module_path(module)]
    while waiting:
        path = waiting.pop()
        if path in seen:
            continue
        seen.add(path)
        waiting += imported_modules(path) - seen
    return {path for path in seen if path.name != "__init__.py"} - {ENTRY_POINT}


def covered_files(dependency: str) -> set[Path]:
    """The Python files a dvc.yaml dependency under src/ covers."""
    path = PROJECT_ROOT / dependency
    return set(path.rglob("*.py")) if path.is_dir() else {path}


def code_deps(stage: dict) -> list[str]:
    """A dvc.yaml stage's dependencies under src/ (a `foreach` stage's, for every item)."""
    return [dep for dep in stage.get("do", stage)["deps"] if dep.startswith("src/")]


def relative(paths: set[Path]) -> list[str]:
    return sorted(str(path.relative_to(PROJECT_ROOT)) for path in paths)


STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_has_a_folder_of_its_own_name():
    assert {name for name in STAGES} == {
        path.name for path in (PACKAGE / "stages").iterdir() if (path / "task.py").is_file()
    }


def test_the_packages_a_stage_imports_run_nothing_but_their_modules():
    # The dependency check leaves their __init__.py files out: they must run nothing.
    inits = {
        folder / "__init__.py"
        for name in STAGES
        for path in code_run_by(f"mlops_lab.stages.{name}.task")
        for folder in path.parents
        if folder.is_relative_to(PACKAGE)
    }
    assert [path for path in inits if not is_only_a_docstring(path)] == []


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_depends_on_exactly_the_code_it_runs(name):
    runs = code_run_by(f"mlops_lab.stages.{name}.task")
    deps = code_deps(STAGES[name])
    covered = set().union(*(covered_files(dep) for dep in deps))
    covered = {path for path in covered if path.name != "__init__.py"}
    assert relative(runs - covered) == [], f"{name} runs code its deps do not list"
    assert relative(covered - runs) == [], f"{name} lists code it does not run"


def test_the_check_sees_a_missing_dependency():
    runs = code_run_by("mlops_lab.stages.training.task")
    assert PACKAGE / "kernel" / "features.py" in runs
    assert PACKAGE / "service" / "app.py" not in runs


def test_a_candidates_cache_key_covers_the_code_that_decides_the_model():
    decides = code_run_by("mlops_lab.stages.training.transform")
    # The config's values are in the key already; how config.yaml is read is not the model.
    decides -= {PACKAGE / "config.py", *(PACKAGE / "common").glob("*.py")}
    assert sorted(TRAINING_CODE) == relative(decides)
