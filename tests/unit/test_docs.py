"""What the README and docs/ show is what the lab has and does: every `mlops-lab` command and
option and every `make` target they name exists, every link lands, and the numbers and answers
they quote are the ones the committed pipeline run wrote (metrics/, reports/). A change that
makes a page wrong fails here, not in a reader's shell."""

import json
import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from mlops_lab.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_blocks(page: Path) -> list[str]:
    """The page's ```bash blocks, each with its continued lines joined, and its inline code
    that calls `mlops-lab` or `make`."""
    text = page.read_text()
    blocks = re.findall(r"^ *```(?:bash|sh|shell)\n(.*?)^ *```", text, re.S | re.M)
    inline = re.findall(r"(?<!`)`((?:mlops-lab|make) [^`]+)`", text)
    return [block.replace("\\\n", " ") for block in blocks] + inline


def without_comments(block: str) -> str:
    """The block with each comment cut: from a `#` that starts a word outside quotes to the
    end of its line."""
    kept, quote, in_comment, previous = [], "", False, "\n"
    for character in block:
        if in_comment and character != "\n":
            continue
        in_comment = False
        if quote:
            quote = "" if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character == "#" and previous in " \t\n":
            in_comment = True
            continue
        kept.append(character)
        previous = character
    return "".join(kept)


def shell_words(block: str) -> list[str]:
    """A block's words and operators as the shell splits them, comments left out; a newline
    ends a command as `;` does."""
    lexer = shlex.shlex(without_comments(block), posix=True, punctuation_chars=True)
    lexer.commenters = ""
    lexer.whitespace = " \t\r"
    lexer.wordchars += "$?=/{}:.,-@%+*[]<>~#"
    return list(lexer)


def commands(page: Path, program: str) -> list[list[str]]:
    """Each call of `program` in the page's shell blocks, as words."""
    found: list[list[str]] = []
    for block in shell_blocks(page):
        command: list[str] = []
        for word in [*shell_words(block), "\n"]:
            if word in {"\n", ";", "&", "&&", "||", "|", "(", ")"}:
                if command and command[0] == program:
                    found.append(command)
                command = []
            else:
                command.append(word)
    return found


def cli_options(command: click.Command) -> set[str]:
    return {option for parameter in command.params for option in parameter.opts}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_mlops_lab_command_and_option_shown_exists(page):
    for words in commands(page, "mlops-lab"):
        command: click.Command = cli
        rest = words[1:]
        while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
            assert rest[0] in command.commands, f"{page.name}: `{' '.join(words)}`: no {rest[0]}"
            command, rest = command.commands[rest[0]], rest[1:]
        known = cli_options(command) | {"--help"}
        for word in rest:
            if word.startswith("--"):
                option = word.split("=")[0]
                assert option in known, f"{page.name}: `{' '.join(words)}`: no {option}"


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_make_target_shown_exists(page):
    targets = make_targets()
    for words in commands(page, "make"):
        named = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        assert set(named) <= targets, f"{page.name}: `{' '.join(words)}`: not in {targets}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_to_a_file_lands(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        assert (page.parent / target).exists(), f"{page.name}: the link {target} leads nowhere"


def test_the_readme_asks_with_the_challenge_payload_and_shows_the_models_answer():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    payload = config["prediction_app"]["challenge_payload"]
    smoke = json.loads((ROOT / config["prediction_app"]["output_path"]).read_text())
    answered = next(p for p in smoke["predictions"] if p["id"] == payload["id"])
    blocks = [block for block in shell_blocks(ROOT / "README.md") if "/predict" in block]
    assert len(blocks) == 2, "the README asks the service in each quick start"
    for block in blocks:
        sent = re.search(r"-d '(\{.*?\})'", block, re.S)
        assert sent and json.loads(sent.group(1)) == payload, block
        shown = "".join(
            line.removeprefix("# ") for line in block.splitlines() if line.startswith("# ")
        )
        assert f'"price_category": "{answered["price_category"]}"' in shown, shown
        for category, probability in re.findall(r'"(\w+)": (0\.\d+)', shown):
            assert float(probability) == round(answered["probabilities"][category], 3), shown


def table_row(readme: str, label: str) -> list[float]:
    """The four scores of the README's results row whose first cell contains `label`."""
    row = next(line for line in readme.splitlines() if line.startswith("|") and label in line)
    return [float(cell.strip(" *")) for cell in row.strip("|").split("|")[1:]]


def test_the_readme_results_are_the_committed_metrics():
    readme = (ROOT / "README.md").read_text()
    training = json.loads((ROOT / "metrics" / "training.json").read_text())

    def scores(view_scores: dict) -> list[float]:
        return [
            round(view_scores[view][metric], 4)
            for view in ("required", "full")
            for metric in ("test_roc_auc_ovr", "test_macro_f1")
        ]

    reference = training["candidates"][training["reference"]["name"]]
    assert table_row(readme, "the notebook's model") == scores(reference)
    winner = training["winner"]
    assert f"`{winner}` (champion)" in readme
    assert table_row(readme, f"`{winner}`") == scores(training["candidates"][winner])
