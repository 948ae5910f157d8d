"""Every user mistake: one message naming the file (and line), the problem and the fix; exit 2; no traceback."""
import errno
import os
from pathlib import Path

import pytest
from catalog_files import SENTIMENT_FILES, write_catalog
from click.testing import CliRunner

from promptlab.cli import main


@pytest.fixture
def run(tmp_path, tiny_gpt2_dir):
    def run_with(changes: dict, *extra: str, model: str | None = None):
        removed = [relative for relative, content in changes.items() if content is None]
        root = write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES, **changes} | {r: "" for r in removed})
        for relative in removed:
            (root / relative).unlink()
        args = ["zeroshot", "--catalog", str(root), "--task", "toy", "--template", "t1",
                "--model", model or str(tiny_gpt2_dir), *extra]
        result = CliRunner().invoke(main, args)
        return result, root
    return run_with


def assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.output, result.output


CASES = {
    "template syntax error": ({"templates/toy/t1.jinja": "{{ text }}\nIt was {{ mask }.\n"},
                              ["t1.jinja:2:", "syntax error"]),
    "undefined variable": ({"templates/toy/t1.jinja": "{{ text }} {{ review }} It was {{ mask }}."},
                           ["t1.jinja", "no field 'review'", "fields present"]),
    "no mask": ({"templates/toy/t1.jinja": "{{ text }} It was good."}, ["no answer slot", "{{ mask }}"]),
    "two masks": ({"templates/toy/t1.jinja": "{{ mask }} {{ text }} {{ mask }}"}, ["2 times"]),
    "sandbox escape": ({"templates/toy/t1.jinja": "{{ text.__class__.__base__.__subclasses__() }} {{ mask }}"},
                       ["private attribute '__"]),
    "sandbox unsafe call": ({"templates/toy/t1.jinja": "{{ text.split().append(1) }} {{ mask }}"}, ["unsafe"]),
    "verbalizer label not in task": ({"verbalizers/toy/default.yaml": "labels:\n  negative: bad\n  postive: good\n"},
                                     ["default.yaml:3:", "'postive'", "did you mean 'positive'"]),
    "verbalizer label missing": ({"verbalizers/toy/default.yaml": "labels:\n  negative: bad\n"},
                                 ["no words for label positive"]),
    "empty word list": ({"verbalizers/toy/default.yaml": "labels:\n  negative: []\n  positive: good\n"},
                        ["default.yaml:2:", "empty word list"]),
    "empty word": ({"verbalizers/toy/default.yaml": "labels:\n  negative: [bad, '  ']\n  positive: good\n"},
                   ["empty word"]),
    "yaml boolean word": ({"verbalizers/toy/default.yaml": "labels:\n  negative: no\n  positive: yes\n"},
                          ["default.yaml:2:", "boolean", 'quote it: "no"']),
    "duplicate yaml key": ({"verbalizers/toy/default.yaml": "labels:\n  negative: bad\n  positive: good\n  negative: awful\n"},
                           ["default.yaml:4:", "duplicate key 'negative'"]),
    "unknown key in verbalizer": ({"verbalizers/toy/default.yaml": "labels: {negative: bad, positive: good}\nwords: 1\n"},
                                  ["unknown key 'words'"]),
    "unknown key in task": ({"tasks/toy.yaml": "labels: [negative, positive]\nlabel: x\n"},
                            ["toy.yaml:2:", "unknown key 'label'", "did you mean 'labels'"]),
    "missing data file": ({"tasks/data/test.jsonl": None}, ["test.jsonl", "not found"]),
    "empty data file": ({"tasks/data/test.jsonl": ""}, ["test.jsonl", "no examples"]),
    "invalid json line": ({"tasks/data/test.jsonl": '{"text": "ok", "label": 0}\n{"text": "broken\n'},
                          ["test.jsonl:2:", "JSON"]),
    "example missing a field": ({"tasks/data/test.jsonl": '{"text": "ok", "label": 0}\n{"txt": "a", "label": 1}\n'},
                                ["no field 'text'"]),
    "label not in task": ({"tasks/data/test.jsonl": '{"text": "ok", "label": "positiv"}\n'},
                          ["test.jsonl:1:", "'positiv'", "positive"]),
    "undecodable text": ({"tasks/data/test.jsonl": b'{"text": "caf\xe9", "label": 0}\n'},
                         ["test.jsonl", "UTF-8"]),
    "undecodable template": ({"templates/toy/t1.jinja": b"\xff{{ text }} {{ mask }}"}, ["t1.jinja", "UTF-8"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_message(run, case):
    changes, fragments = CASES[case]
    result, _ = run(changes)
    assert_user_error(result, *fragments)


def test_unreadable_data_file(run, tmp_path, monkeypatch):
    root = write_catalog(tmp_path / "catalog", SENTIMENT_FILES)
    unreadable = (root / "tasks/data/test.jsonl").resolve()
    unreadable.chmod(0)
    if os.geteuid() == 0:  # root reads any file: refuse this one as the system would refuse anyone else
        read_bytes = Path.read_bytes

        def refuse(path):
            if path.resolve() == unreadable:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return read_bytes(path)
        monkeypatch.setattr(Path, "read_bytes", refuse)
    result, _ = run({})
    assert_user_error(result, "test.jsonl", "cannot read data file: Permission denied", "check the file's permissions")


def test_data_that_is_a_folder_is_unreadable(run, tmp_path):
    os.makedirs(tmp_path / "folder.jsonl")
    result, _ = run({}, "--data", str(tmp_path / "folder.jsonl"))
    assert result.exit_code == 2  # click refuses a folder for --data
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, fragments", [
    (["--task", "toyy"], ["unknown task 'toyy'", "did you mean 'toy'"]),
    (["--template", "t2"], ["unknown template", "t1"]),
    (["--verbalizer", "defualt"], ["unknown verbalizer", "did you mean 'default'"]),
])
def test_unknown_names(run, args, fragments):
    result, root = run({})
    result = CliRunner().invoke(main, ["zeroshot", "--catalog", str(root), "--task", "toy", "--template", "t1",
                                       *args])
    assert_user_error(result, *fragments)


def test_unknown_model_alias_gets_a_suggestion(run):
    result, _ = run({}, model="smolm2-135m")
    assert_user_error(result, "did you mean 'smollm2-135m'")


def test_data_mistakes_are_found_before_the_model_loads(run, tmp_path):
    result, _ = run({"tasks/data/test.jsonl": '{"text": "ok", "label": "positiv"}\n'}, model=str(tmp_path / "no-model"))
    assert_user_error(result, "'positiv'")


def test_missing_catalog_folder(run, tmp_path):
    result = CliRunner().invoke(main, ["zeroshot", "--catalog", str(tmp_path / "nope"), "--task", "x", "--template", "y"])
    assert result.exit_code == 2 and "Traceback" not in result.output
