from pathlib import Path

import pytest

from promptlab.errors import UserError
from promptlab.catalog.template import Prompt, load_template, parse_template


def parse(source: str):
    return parse_template(source, name="t", task="x", path=Path("templates/x/t.jinja"))


def test_render_splits_at_the_slot_and_strips_nothing():
    template = parse("{{ premise }}\n Q: {{ hypothesis }}? A: {{ mask }}.\n")
    assert template.fields == {"premise", "hypothesis"}
    prompt = template.render({"premise": " It rained. ", "hypothesis": "wet"})
    assert prompt == Prompt(" It rained. \n Q: wet? A: ", ".\n")
    assert prompt.text("yes") == " It rained. \n Q: wet? A: yes.\n"


def test_metadata_comment_is_parsed_and_not_rendered():
    template = parse('{#\ndescription: "Short: review"\ndomain: "It was"\n#}\n{{ text }} It was {{ mask }}.')
    assert template.metadata == {"description": "Short: review", "domain": "It was"}
    assert template.render({"text": "ok"}).before == "ok It was "
    assert template.domain_prompt() == Prompt("It was ", "")


@pytest.mark.parametrize("source, domain", [
    ('{#\ndomain: "Sentiment:"\n#}\nReview: {{ text }}\nSentiment:\n{{ mask }}', "Sentiment:\n"),
    ('{#\ndomain: "Answer: "\n#}\n{{ text }} Answer:{{ mask }}', "Answer:"),  # the template's space wins
    ('{#\ndomain: "Topic"\n#}\n{{ text }} Topic {{ text }} {{ mask }}', "Topic "),  # not the field's
])
def test_domain_prompt_ends_with_the_whitespace_the_template_puts_before_the_slot(source, domain):
    assert parse(source).domain_prompt() == Prompt(domain, "")


def test_ordinary_leading_comment_is_not_metadata():
    template = parse("{# just a note #}{{ text }} {{ mask }}")
    assert template.metadata == {}


def test_content_free_prompt_fills_every_field():
    template = parse("{{ a }} and {{ b }}: {{ mask }}")
    assert template.content_free("N/A") == Prompt("N/A and N/A: ", "")


def test_syntax_error_names_line():
    with pytest.raises(UserError) as caught:
        parse("{{ text }}\nIt was {{ mask }.\n")
    assert caught.value.line == 2 and "syntax error" in caught.value.what


@pytest.mark.parametrize("source, problem", [("{{ text }} It was good.", "no answer slot"),
                                             ("{{ mask }} {{ text }} {{ mask }}", "2 times")])
def test_mask_must_appear_once(source, problem):
    with pytest.raises(UserError, match=problem):
        parse(source)


def test_mask_inside_a_loop_is_caught_at_render():
    template = parse("{% for x in items %}{{ mask }}{% endfor %}")
    with pytest.raises(UserError, match="rendered 2 times"):
        template.render({"items": [1, 2]})


def test_missing_field_is_reported_with_fields_present():
    template = parse("{{ premise }} {{ hypothesis }} {{ mask }}")
    with pytest.raises(UserError) as caught:
        template.render({"id": "7", "premise": "p"})
    assert "'hypothesis'" in caught.value.what and "example 7" in caught.value.what
    assert "premise" in caught.value.what


def test_undefined_attribute_is_an_error_not_empty_text():
    template = parse("{{ text.title_case }} {{ mask }}")
    with pytest.raises(UserError, match="rendering failed"):
        template.render({"text": {"other": 1}})


@pytest.mark.parametrize("source", [
    "{{ text.__class__.__mro__ }} {{ mask }}",
    "{{ text['__class__'] }} {{ mask }}",
])
def test_private_attributes_are_rejected_statically(source):
    with pytest.raises(UserError, match="private attribute"):
        parse(source)


def test_sandbox_blocks_unsafe_calls_at_render():
    template = parse("{{ items.append(1) }} {{ mask }}")
    with pytest.raises(UserError, match="unsafe"):
        template.render({"items": []})


@pytest.mark.parametrize("source, example", [
    ("{{ 'x' * 10**7 }} {{ mask }}", {}),
    ("{{ [1] * 10**8 }} {{ mask }}", {}),
    ("{{ 7 ** 1000000 }} {{ mask }}", {}),
    ("{% for i in range(90000) %}{{ text }}{% endfor %} {{ mask }}", {"text": "twelve chars"}),
    ("{{ text }} {{ mask }}", {"text": "x" * 2_000_000}),
])
def test_rendering_is_capped_in_length(source, example):
    with pytest.raises(UserError, match="unsafe|renders more than"):
        parse(source).render(example)
    assert parse("{{ text * 3 }} {{ mask }}").render({"text": "ab"}).before == "ababab "


def test_a_template_may_not_read_the_gold_label():
    with pytest.raises(UserError, match="reads 'label', the gold answer") as caught:
        parse("{{ text }}\nHint: {{ label }}\nIt was {{ mask }}")
    assert caught.value.line == 2


def test_a_data_column_named_like_the_slot_is_refused():
    with pytest.raises(UserError, match="field named 'mask'") as caught:
        parse("{{ text }} {{ mask }}").render({"id": "7", "text": "a", "mask": "hidden"})
    assert "example 7" in caught.value.message and "rename" in caught.value.fix


def test_bad_metadata_is_an_error_with_line(tmp_path):
    with pytest.raises(UserError, match="unknown template metadata key 'descripton'") as caught:
        parse("{#\ndescripton: x\n#}{{ mask }}")
    assert "did you mean 'description'" in caught.value.fix
    assert caught.value.line == 2


def test_load_template_rejects_undecodable_file(tmp_path):
    path = tmp_path / "t.jinja"
    path.write_bytes(b"\xff\xfe{{ mask }}")
    with pytest.raises(UserError, match="UTF-8"):
        load_template(path, task="x")


def test_content_hash_changes_with_text():
    assert parse("{{ mask }}.").content_hash != parse("{{ mask }}!").content_hash
