"""The package's rooms, read from its own imports. Each room stands only on the rooms below it:

    common → kernel → config → evaluation, tracking → serving → service
                                                  ↘ stages, commands → loop

Stages never import each other or a command (kedro's rule: pipelines never import each other's
nodes), commands never import each other or a stage, and only the HTTP service imports the
service: the batch commands and the smoke stage answer through serving/, as the service does.
The loop, on top, wires two commands (monitor, harvest) and runs the stages through DVC."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "mlops_lab"
# What each room may import besides itself.
BELOW = {
    "common": set(),
    "kernel": {"common"},
    "config": {"common", "kernel"},
    "evaluation": {"common", "kernel", "config"},
    "tracking": {"common", "kernel", "config"},
    "serving": {"common", "kernel", "config", "evaluation", "tracking"},
    "service": {"common", "kernel", "config", "evaluation", "tracking", "serving"},
    "stages.context": {"common", "config", "tracking"},
    "loop": {
        "common",
        "kernel",
        "config",
        "evaluation",
        "tracking",
        "serving",
        "commands.monitor",
        "commands.harvest",
    },
}
# Stages and commands stand on any room but the service; a stage on its context too.
UNDER_STEPS = {"common", "kernel", "config", "evaluation", "tracking", "serving"}
# The entry point wires everything together.
ENTRY_POINTS = {"cli.py", "__init__.py"}
# Where models saved by earlier versions say their classes are: names for kernel classes.
EARLIER_NAMES = {"features.py", "blend.py", "decision.py"}


def steps(kind: str) -> set[str]:
    """The stages' or the commands' folder names."""
    return {path.name for path in (PACKAGE / kind).iterdir() if (path / "task.py").is_file()}


def room_of(parts: tuple[str, ...]) -> str:
    """The room a module belongs to, from its dotted name's parts after mlops_lab."""
    if parts[0] in {"stages", "commands"} and len(parts) > 1:
        return f"{parts[0]}.{parts[1]}"
    return parts[0].removesuffix(".py")


def module_room(module: str) -> str:
    """The room of a dotted module name."""
    return room_of(tuple(module.split(".")[1:]))


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


def allowed(room: str) -> set[str]:
    """The rooms a module of `room` may import."""
    if room in EARLIER_NAMES | {"features", "blend", "decision"}:
        return {"kernel"}
    if room in BELOW:
        return BELOW[room] | {room}
    kind, _, name = room.partition(".")
    if kind == "stages" and name in steps("stages"):
        return UNDER_STEPS | {"stages.context", room}
    if kind == "commands" and name in steps("commands"):
        return UNDER_STEPS | {room}
    raise AssertionError(f"{room} is no room, stage or command")


def modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if str(path.relative_to(PACKAGE)) not in ENTRY_POINTS
    ]


def test_the_package_has_the_expected_rooms():
    assert steps("stages") == {
        "data_prep",
        "training",
        "explainability",
        "prediction_app",
        "promote",
        "tune",
        "ablate",
    }
    assert steps("commands") == {
        "score",
        "replay",
        "monitor",
        "harvest",
        "approve",
        "rollback",
        "swarm",
        "summary",
    }
    assert {path.name for path in PACKAGE.iterdir() if path.is_dir()} >= set(BELOW) - {
        "config",
        "stages.context",
    }


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_imports_a_room_it_must_not(path):
    room = room_of(path.relative_to(PACKAGE).with_suffix("").parts)
    wrong = [
        f"line {line}: {name}"
        for line, name in imports_of(path)
        if module_room(name) not in allowed(room)
    ]
    assert not wrong, f"{path.relative_to(PACKAGE)} ({room}) imports " + "; ".join(wrong)


def test_the_checker_sees_a_stage_importing_another_or_the_service(tmp_path):
    module = tmp_path / "task.py"
    module.write_text(
        "from mlops_lab.stages.training.transform import choose_winner\n"
        "from mlops_lab.service.settings import ServiceSettings\n"
    )
    rooms = [module_room(name) for _, name in imports_of(module)]
    assert rooms == ["stages.training", "service"]
    assert not set(rooms) & allowed("stages.tune")
    assert "service" not in allowed("commands.score")
    assert "serving" not in allowed("kernel")
