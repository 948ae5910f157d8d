"""Batch calibration and its streaming form against hand-computed priors; contextual calibration against the
content-free prior computed by a plain loop over the model (tests/reference_lm.py)."""
import json

import pytest
import reference_lm
import torch
from cli_run import invoke

from promptlab.backends.calibration import (
    RunningPrior,
    batch_calibrate,
    content_free_fillers,
    divide_out,
)

# Uncalibrated p(label | x) of 5 examples, 3 labels: every example leans to label 0.
PROBS = torch.tensor([[0.70, 0.20, 0.10], [0.50, 0.45, 0.05], [0.60, 0.10, 0.30],
                      [0.80, 0.15, 0.05], [0.55, 0.05, 0.40]], dtype=torch.float64)


def calibrated_by_hand(probs, prior):
    rows = [[p / q for p, q in zip(row, prior)] for row in probs.tolist()]
    return torch.tensor([[value / sum(row) for value in row] for row in rows], dtype=torch.float64)


def test_batch_calibration_divides_out_the_mean_label_distribution():
    prior = [sum(column) / len(column) for column in zip(*PROBS.tolist())]
    expected = calibrated_by_hand(PROBS, prior)
    result = batch_calibrate(PROBS.log()).exp()
    torch.testing.assert_close(result, expected)
    assert PROBS.argmax(-1).tolist() == [0, 0, 0, 0, 0]
    assert result.argmax(-1).tolist() == [0, 1, 2, 0, 2]  # the shared lean towards label 0 is gone


def test_a_running_prior_fed_the_whole_set_at_once_is_batch_calibration():
    torch.testing.assert_close(RunningPrior(warmup=5).calibrate(PROBS.log()), batch_calibrate(PROBS.log()))


def test_a_running_prior_waits_for_its_warmup_then_uses_the_mean_of_all_seen():
    stream = RunningPrior(warmup=3)
    first = stream.calibrate(PROBS[:2].log())
    torch.testing.assert_close(first, PROBS[:2].log())  # 2 seen < warm-up: untouched
    assert not stream.ready
    third = stream.calibrate(PROBS[2:3].log())
    torch.testing.assert_close(third.exp(), calibrated_by_hand(PROBS[2:3], PROBS[:3].mean(0).tolist()))
    rest = stream.calibrate(PROBS[3:].log())
    torch.testing.assert_close(rest.exp(), calibrated_by_hand(PROBS[3:], PROBS.mean(0).tolist()))
    assert stream.seen == 5


def test_a_running_prior_refuses_another_number_of_labels():
    stream = RunningPrior(warmup=0)
    stream.observe(PROBS.log())
    with pytest.raises(ValueError, match="expected 3 labels, got 2"):
        stream.observe(torch.zeros(1, 2))


def test_divide_out_renormalises_over_the_labels():
    logprobs = divide_out(PROBS.log(), torch.tensor([0.5, 0.25, 0.25]).log())
    torch.testing.assert_close(logprobs.exp().sum(-1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(logprobs.exp(), calibrated_by_hand(PROBS, [0.5, 0.25, 0.25]))


def test_content_free_fillers_spell_the_mask_as_the_tokenizer_does():
    assert content_free_fillers("<mask>") == ("N/A", "", "<mask>")
    assert content_free_fillers(None) == ("N/A", "", "[MASK]")  # a causal model reads it as text


def test_zeroshot_contextual_calibration_is_the_content_free_prior_divided_out_by_hand(toy_catalog_dir,
                                                                                      sensitive_gpt2_dir, tmp_path):
    invoke("zeroshot", "--catalog", toy_catalog_dir, "--task", "toy", "--template", "t1", "--model", sensitive_gpt2_dir,
           "--dtype", "float32", "--calibrate", "contextual", "--output", tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    texts = {json.loads(line)["id"]: json.loads(line)["text"]
             for line in (toy_catalog_dir / "tasks/data/test.jsonl").read_text().splitlines()}
    expected, uncalibrated = reference_lm.toy_answers(sensitive_gpt2_dir, [texts[row["id"]] for row in rows])
    assert [row["predicted"] for row in rows] == [reference_lm.top(want) for want in expected]
    for row, want in zip(rows, expected):
        assert row["probabilities"] == pytest.approx(want, abs=1e-5)
    # the prior moves every row (by far more than the tolerance): a run that skipped it or got it wrong would differ
    assert min(abs(row["probabilities"]["positive"] - plain["positive"]) for row, plain in zip(rows, uncalibrated)) > 0.01
