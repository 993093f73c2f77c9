"""No function in src is over 60 lines: a longer one is several steps that want names (read,
transform, write, each a function of its own)."""

import ast

from projects import PROJECT_ROOT

MOST_LINES = 60


def long_functions(most_lines: int) -> list[str]:
    """Every function or method in src longer than `most_lines`, with its length."""
    found = []
    for path in sorted((PROJECT_ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > most_lines:
                    where = path.relative_to(PROJECT_ROOT)
                    found.append(f"{where}:{node.lineno} {node.name}: {lines} lines")
    return found


def test_no_function_is_over_60_lines():
    assert long_functions(MOST_LINES) == []


def test_the_check_finds_a_long_function():
    assert long_functions(40) != []
