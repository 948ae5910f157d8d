"""A Chinese classification task written only as files (task, template, verbalizer, data) runs zero- and few-shot."""
import json

from catalog_files import write_catalog
from click.testing import CliRunner

from promptlab.cli import main

REVIEWS = [("客服态度很好，问题很快解决了", "好评"), ("等了一个小时也没人回复", "差评"), ("物流很快，包装完好", "好评"),
           ("质量太差，用了一天就坏了", "差评"), ("非常满意，下次还来", "好评"), ("退款一直不到账，很失望", "差评")]
CHINESE_FILES = {
    "tasks/service-zh.yaml": "labels: [好评, 差评]\ndata: {train: data/train.jsonl, test: data/test.jsonl}\n",
    "templates/service-zh/t1.jinja": "顾客评价：{{ text | truncate_chars(30) }}\n这是一条{{ mask }}。",
    "verbalizers/service-zh/default.yaml": "labels:\n  好评: [好评, 满意]\n  差评: [差评, 不满]\n",
    "tasks/data/test.jsonl": "".join(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n"
                                     for text, label in REVIEWS),
    "tasks/data/train.jsonl": "".join(json.dumps({"text": text + "。", "label": label}, ensure_ascii=False) + "\n"
                                      for text, label in REVIEWS * 3),
}


def invoke(*args):
    result = CliRunner().invoke(main, list(map(str, args)))
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_a_chinese_task_in_files_runs_zero_shot_and_few_shot(tmp_path, tiny_llama_dir):
    root = write_catalog(tmp_path / "catalog", CHINESE_FILES)
    zero = invoke("zeroshot", "--catalog", root, "--task", "service-zh", "--model", tiny_llama_dir,
                  "--output", tmp_path / "zero", "--json")
    predictions = [json.loads(line) for line in (tmp_path / "zero" / "predictions.jsonl").read_text().splitlines()]
    assert zero["n"] == 6 and [row["gold"] for row in predictions] == [label for _, label in REVIEWS]
    assert zero["accuracy"] == sum(row["gold"] == row["predicted"] for row in predictions) / 6
    few = invoke("fewshot", "--catalog", root, "--task", "service-zh", "--model", tiny_llama_dir, "--k", 2,
                 "--method", "head", "--seeds", "1", "--json")
    assert few["k"] == 2 and few["n"] == 6 and few["per_seed"][0]["metrics"]["n"] == 6
    assert set(few["per_seed"][0]["metrics"]["per_label"]) == {"好评", "差评"}
