import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from mlops_lab.common.files import atomic_path, replace_directory_atomically, write_json_atomically


def test_write_json_atomically_replaces_the_file(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    write_json_atomically(target, {"b": 1, "a": 2})
    assert json.loads(target.read_text()) == {"a": 2, "b": 1}
    assert target.read_text().index('"a"') < target.read_text().index('"b"')


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "data.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]


def test_replace_directory_atomically_swaps_and_keeps_old_on_failure(tmp_path):
    target = tmp_path / "model"

    def fill(text):
        def write(path):
            path.mkdir()
            (path / "file").write_text(text)

        return write

    replace_directory_atomically(target, fill("one"))
    replace_directory_atomically(target, fill("two"))
    assert (target / "file").read_text() == "two"

    def fail(path):
        path.mkdir()
        raise OSError("disk full")

    with pytest.raises(OSError):
        replace_directory_atomically(target, fail)
    assert (target / "file").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_folder_replaces_a_file_of_its_name_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "scores.parquet"
    target.write_text("a scores file")

    def fill(path):
        path.mkdir()
        (path / "part-0.parquet").write_text("part")

    replace_directory_atomically(target, fill)
    assert [p.name for p in target.iterdir()] == ["part-0.parquet"]
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def replace_with_own_copies(target, writer, times):
    """Replace `target` `times` times with a folder that names the writer."""

    def fill(path):
        path.mkdir()
        (path / "writer").write_text(writer)

    for _ in range(times):
        replace_directory_atomically(target, fill)


def test_processes_replacing_one_folder_at_once_take_turns(tmp_path):
    target = tmp_path / "model"
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        writes = [pool.submit(replace_with_own_copies, target, name, 2000) for name in "ab"]
        for write in writes:
            write.result()
    assert (target / "writer").read_text() in {"a", "b"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
