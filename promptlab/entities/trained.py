"""Entity predictors for raw text: a token-finetune folder (from `fewshot --output`), or entity-prompt on a model.

    predictor = tagger_predictor(folder)              # seed-N folder written by token-finetune
    predictor = prompt_predictor(setup, loaded)       # zero-shot entity-prompt
    entities_in_texts(predictor, ["Japan beat Syria in Al Ain."])
        -> [[{"start": 0, "end": 5, "type": "LOC", "text": "Japan", "score": 0.97}, ...]]
"""
from __future__ import annotations

import json
from pathlib import Path

from promptlab.backends import make_backend
from promptlab.entities import prompting
from promptlab.entities.text import SpanPredictor
from promptlab.entities.token_finetune import TokenTagger, spans_with_scores
from promptlab.errors import UserError
from promptlab.scoring import LabelScorer

TAGGER_FILE = "entity_task.json"


def tagger_predictor(folder: str | Path, *, device: str = "auto") -> tuple[SpanPredictor, dict]:
    """The trained token classifier of a token-finetune run, and what it was trained for."""
    path = Path(folder) / TAGGER_FILE
    if not path.is_file():
        raise UserError(f"no {TAGGER_FILE} in this folder: it is not a trained token-finetune model", where=folder,
                        fix="pass a seed-N folder written by  fewshot --method token-finetune --output DIR")
    metadata = json.loads(path.read_text(encoding="utf-8"))
    tagger = TokenTagger.load(str(folder), metadata["types"], device=device)

    def predict(sentences):
        return [spans_with_scores(tags, scores) for tags, scores in tagger.predict(sentences)]

    return predict, metadata


def prompt_predictor(setup, loaded, *, max_span: int = 3, candidates: str = "capitalised",
                     calibrate: str = "contextual") -> SpanPredictor:
    """Zero-shot entity-prompt with the task's template and verbalizer on a loaded model."""
    scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device), setup.template,
                         setup.verbalizer, calibrate=calibrate)

    def predict(sentences):
        return prompting.recognise(scorer, setup.template, sentences, setup.verbalizer.labels, max_span=max_span,
                                   keep=candidates)

    return predict
