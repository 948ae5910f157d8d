import pytest
from catalog_files import SENTIMENT_FILES, write_catalog

from promptlab.catalog.catalog import Catalog
from promptlab.errors import UserError
from promptlab.evaluation.suite import expand, load_suite
from promptlab.kinds import task_examples

VALID = """\
description: toy grid
tasks: [toy]
models: [some-model]
methods:
  - zeroshot: {calibrate: [none, contextual]}
  - majority
  - softprompt: {steps: 3}
shots: [0, 2, 4]
seeds: [1, 2]
limit: 4
"""


def catalog_with(tmp_path, suite_text, extra=None):
    write_catalog(tmp_path, {**SENTIMENT_FILES, **(extra or {}), "eval_suites/grid.yaml": suite_text})
    return Catalog.from_options([tmp_path])


def load(tmp_path, suite_text, extra=None):
    return load_suite("grid", catalog_with(tmp_path, suite_text, extra))


def test_valid_suite_expands_into_its_grid(tmp_path):
    suite = load(tmp_path, VALID)
    configs = expand(suite)
    zero_shot = [config for config in configs if config.k == 0]
    assert [config.label for config in zero_shot] == ["zeroshot (none)", "zeroshot (contextual)"]
    assert all(config.seed is None and "train" not in config.data for config in zero_shot)
    few_shot = [config for config in configs if config.k > 0]
    assert len(few_shot) == 2 * 2 * 2  # methods x k x seeds
    assert few_shot[0].options == {} and few_shot[-1].options == {"steps": 3}
    assert {config.limit for config in configs} == {4}
    assert all(configs.count(config) == 1 for config in configs)


def test_configs_are_stable_and_carry_the_template_text_hash(tmp_path):
    configs = expand(load(tmp_path, VALID))
    assert configs == expand(load(tmp_path, VALID))
    edited = load(tmp_path, VALID, {"templates/toy/t1.jinja": "{{ text }} Overall it was {{ mask }}."})
    assert {config.template_hash for config in configs}.isdisjoint(config.template_hash for config in expand(edited))


def test_defaults_every_template_and_the_default_verbalizer(tmp_path):
    extra = {"templates/toy/t2.jinja": "Review: {{ text }} {{ mask }}", "verbalizers/toy/other.yaml":
             "labels: {negative: bad, positive: good}\n"}
    suite = load(tmp_path, "tasks: [toy]\nmodels: [m]\nmethods: [zeroshot]\nshots: [0]\n", extra)
    assert [(setup.template.name, setup.verbalizer.name) for setup in suite.setups["toy"]] == \
        [("t1", "default"), ("t2", "default")]
    assert [config.label for config in expand(suite)] == ["zeroshot (none)"] * 2
    both = load(tmp_path, "tasks: [toy]\nmodels: [m]\nmethods: [zeroshot]\nshots: [0]\n"
                          "templates: {toy: t2}\nverbalizers: [default, other]\n", extra)
    assert [(setup.template.name, setup.verbalizer.name) for setup in both.setups["toy"]] == \
        [("t2", "default"), ("t2", "other")]


def test_task_entry_limit_and_data_override(tmp_path):
    (tmp_path / "mine.jsonl").write_text('{"text": "great", "label": "positive"}\n')
    suite = load(tmp_path, "tasks: {toy: {limit: 2, test: ../mine.jsonl}}\nmodels: [m]\nmethods: [zeroshot]\n"
                           "shots: [0]\nlimit: 9\n")
    (config,) = expand(suite)
    assert config.limit == 2
    assert config.data["test"] == str((tmp_path / "mine.jsonl").resolve())
    assert task_examples(suite.setup(config).task, "test")[0]["text"] == "great"


def test_task_entry_shots_override_the_suites(tmp_path):
    suite = load(tmp_path, VALID.replace("tasks: [toy]", "tasks: {toy: {shots: [0, 2]}}"))
    assert {config.k for config in expand(suite)} == {0, 2}


def test_suite_by_path_and_unknown_suite(tmp_path):
    catalog = catalog_with(tmp_path, VALID)
    assert load_suite(str(tmp_path / "eval_suites" / "grid.yaml"), catalog).name == "grid"
    with pytest.raises(UserError, match="unknown suite 'gird'") as caught:
        load_suite("gird", catalog)
    assert "did you mean 'grid'?" in caught.value.fix
    with pytest.raises(UserError, match="does not exist"):
        load_suite(str(tmp_path / "nope.yaml"), catalog)


BASE = "tasks: [toy]\nmodels: [m]\n"


@pytest.mark.parametrize("text, message, line", [
    (BASE + "methods: [zeroshot]\nshots: [0]\ntaks: 1\n", "unknown key 'taks'", 5),
    ("tasks: [toy]\nmethods: [zeroshot]\nshots: [0]\n", "missing key 'models'", 1),
    ("tasks: [tyo]\nmodels: [m]\nmethods: [zeroshot]\nshots: [0]\n", "unknown task 'tyo'", 1),
    ("tasks:\n  - toy\n  - toy\nmodels: [m]\nmethods: [zeroshot]\nshots: [0]\n", "lists 'toy' twice", 3),
    ("tasks: {toy: {limt: 3}}\nmodels: [m]\nmethods: [zeroshot]\nshots: [0]\n", "unknown key 'limt'", 1),
    (BASE + "templates:\n  - t1\n  - t9\nmethods: [zeroshot]\nshots: [0]\n", "unknown template of task 'toy' 't9'", 5),
    (BASE + "templates: {other: [t1]}\nmethods: [zeroshot]\nshots: [0]\n", "names task 'other'", 3),
    (BASE + "verbalizers: [loud]\nmethods: [zeroshot]\nshots: [0]\n", "unknown verbalizer", 3),
    (BASE + "methods:\n  - zeroshot\n  - softprmpt\nshots: [0, 4]\nseeds: [1]\n", "unknown method 'softprmpt'", 5),
    (BASE + "methods:\n  - zeroshot: {calibrate: [contextul]}\nshots: [0]\n", "unknown calibrate 'contextul'", 4),
    (BASE + "methods:\n  - zeroshot: {calibrate: none, temperature: 2}\nshots: [0]\n", "unknown key 'temperature'", 4),
    (BASE + "methods:\n  - zeroshot: {aggregate: [mean, max]}\nshots: [0]\n", "'aggregate' must be one of", 4),
    (BASE + "methods:\n  - zeroshot: {calibrate: no}\nshots: [0]\n", "reads as a YAML boolean", 4),
    (BASE + "methods:\n  - majority\n  - majority\nshots: [4]\nseeds: [1]\n", "listed twice", 5),
    (BASE + "methods:\n  - softprompt: {stepz: 3}\nshots: [4]\nseeds: [1]\n", "has no option 'stepz'", 4),
    (BASE + "methods:\n  - softprompt: {steps: -3}\nshots: [4]\nseeds: [1]\n", "must be a positive number", 4),
    (BASE + "methods:\n  - {majority: {}, head: {}}\nshots: [4]\nseeds: [1]\n", "a method is a name", 4),
    (BASE + "methods: [majority]\nshots: [4]\n", "few-shot runs need seeds", 1),
    (BASE + "methods: [zeroshot]\nshots: [0, 4]\n", "shots above 0 need a few-shot method", 4),
    (BASE + "methods: [majority]\nshots: [0, 4]\nseeds: [1]\n", "no zero-shot method", 4),
    (BASE + "methods: [zeroshot]\nshots: [4]\nseeds: [1]\n", "shots do not include 0", 4),
    (BASE + "methods: [zeroshot]\nshots:\n  - 0\n  - -4\n", "lists -4", 6),
    (BASE + "methods: [zeroshot]\nshots: [0, 0]\n", "lists 0 twice", 4),
    (BASE + "methods: [zeroshot]\nshots: [true]\n", "lists True", 4),
    (BASE + "methods: [zeroshot]\nshots: [0]\nlimit: 0\n", "'limit' must be a whole number", 5),
    ("tasks:\n  toy: {shots: [0, 4]}\nmodels: [m]\nmethods: [zeroshot]\nshots: [0]\n", "need a few-shot method", 2),
    (BASE + "methods: [zeroshot]\nshots: [0]\nmetrics: [accuracy, f1]\n", "unknown metric 'f1'", 5),
    (BASE + "methods: [zeroshot]\nshots: [0]\nshots: [0]\n", "duplicate key 'shots'", 5),
])
def test_suite_errors_name_the_line(tmp_path, text, message, line):
    with pytest.raises(UserError, match=message) as caught:
        load(tmp_path, text)
    assert caught.value.line == line
    assert str(tmp_path / "eval_suites" / "grid.yaml") in caught.value.message


def test_errors_suggest_a_fix(tmp_path):
    with pytest.raises(UserError) as caught:
        load(tmp_path, "tasks: [tyo]\nmodels: [m]\nmethods: [zeroshot]\nshots: [0]\n")
    assert caught.value.fix.startswith("did you mean 'toy'?")
    with pytest.raises(UserError) as caught:
        load(tmp_path, BASE + "methods: [softprmpt]\nshots: [4]\nseeds: [1]\n")
    assert caught.value.fix == "did you mean 'softprompt'?"


def test_error_inside_a_named_template_keeps_its_own_file(tmp_path):
    with pytest.raises(UserError, match="no answer slot") as caught:
        load(tmp_path, BASE + "methods: [zeroshot]\nshots: [0]\n", {"templates/toy/t1.jinja": "{{ text }}"})
    assert caught.value.where.name == "t1.jinja"


def test_builtin_suites_load():
    catalog = Catalog.from_options()
    for name in ("quick", "offline-kshot", "offline-kshot-cpu", "intent", "intent-encoders", "ner"):
        suite = load_suite(name, catalog)
        assert expand(suite)
    assert {entry.name for entry in load_suite("offline-kshot", catalog).tasks} == \
        {"sentiment", "cr", "bbc", "snips", "tweets", "vitaminc"}


def test_the_ner_suite_runs_its_grid_on_each_method_s_model():
    suite = load_suite("ner", Catalog.from_options())
    units = [(config.label, config.model, config.k, config.seed) for config in expand(suite)]
    assert len(units) == 1 + 3 * 3 * 3  # zero-shot once; three few-shot methods at three k with three seeds
    assert suite.run_models == ("splade-tiny", "minilm-l6", "smollm2-135m")  # token-finetune units first
    assert {(label, model) for label, model, _, _ in units} == {
        ("token-finetune-splade", "splade-tiny"), ("token-finetune-minilm", "minilm-l6"),
        ("zeroshot (contextual)", "smollm2-135m"), ("entity-prompt", "smollm2-135m")}
    assert sorted({k for _, _, k, _ in units}) == [0, 1, 5, 10] and suite.metrics == ("f1", "precision", "recall")
    assert {config.options["lr"] for config in expand(suite) if config.label == "token-finetune-splade"} == {0.0005}
