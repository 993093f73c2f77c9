from click.testing import CliRunner

from mlops_lab.cli import COMMAND_SECTIONS, main


def test_every_command_is_in_one_section_of_the_help():
    sectioned = [name for _, names in COMMAND_SECTIONS for name in names]
    assert sorted(sectioned) == sorted(main.commands)


def test_the_help_lists_the_stages_apart_in_the_order_dvc_repro_runs_them():
    shown = CliRunner().invoke(main, ["--help"]).output
    titles = [title for title, _ in COMMAND_SECTIONS]
    assert [shown.index(f"{title}:") for title in titles] == sorted(
        shown.index(f"{title}:") for title in titles
    )
    stages = shown.split(f"{titles[0]}:")[1].split(f"{titles[1]}:")[0].split()
    names = [word for word in stages if word in main.commands]
    assert names == ["data-prep", "training", "explainability", "prediction-app", "promote"]
    assert "Other:" not in shown
