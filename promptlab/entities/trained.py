"""Entity predictors for raw text: a token-finetune folder (from `fewshot --output`), or entity-prompt on a model.

    predictor = tagger_predictor(folder)              # seed-N artefact written by token-finetune
    predictor = prompt_predictor(setup, loaded)       # zero-shot entity-prompt
    entities_in_texts(predictor, ["Japan beat Syria in Al Ain."])
        -> [[{"start": 0, "end": 5, "type": "LOC", "text": "Japan", "score": 0.97}, ...]]
"""
from __future__ import annotations

from pathlib import Path

from promptlab.apply.artefacts import load_trained
from promptlab.backends import make_backend
from promptlab.entities import prompting
from promptlab.entities.text import SpanPredictor
from promptlab.entities.token_finetune import TokenTagger, spans_with_scores
from promptlab.errors import UserError
from promptlab.scoring import LabelScorer

def tagger_predictor(folder: str | Path, *, device: str = "auto") -> tuple[SpanPredictor, dict]:
    """The trained token classifier of a token-finetune artefact, and the artefact's metadata."""
    saved = load_trained(folder)
    if saved.method != "token-finetune" or saved.model_folder is None:
        raise UserError(f"this artefact was trained with '{saved.method}', not token-finetune", where=folder,
                        fix="pass a seed-N folder written by  fewshot --method token-finetune --output DIR")
    tagger = TokenTagger.load(str(saved.model_folder), saved.state["types"], device=device)

    def predict(sentences):
        return [spans_with_scores(tags, scores) for tags, scores in tagger.predict(sentences)]

    return predict, saved.metadata


def prompt_predictor(setup, loaded, *, max_span: int = 3, candidates: str = "capitalised",
                     calibrate: str = "contextual") -> SpanPredictor:
    """Zero-shot entity-prompt with the task's template and verbalizer on a loaded model."""
    scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device), setup.template,
                         setup.verbalizer, calibrate=calibrate)

    def predict(sentences):
        return prompting.recognise(scorer, setup.template, sentences, setup.verbalizer.labels, max_span=max_span,
                                   keep=candidates)

    return predict
