"""Entity recognition: tasks of kind `entities` (promptlab.kinds).

    tags.py           tag schemes (IOB2, IOB1, BIOES) read into IOB2, spans of a tag sequence
    readers.py        CoNLL and JSONL files, sources and hub data sets -> token sequences with IOB2 tags
    sampling.py       greedy k-shot sampling: every entity type at least k times (Yang & Katiyar, 2020)
    metrics.py        entity-level precision, recall and F1 with seqeval, strict span matching
    token_finetune.py an encoder with a token-classification head, fine-tuned on the k-shot sample
    prompting.py      candidate spans typed through the label scorer; greedy non-overlapping decoding
    methods.py        the methods behind `fewshot` for entity tasks
    commands.py       `zeroshot` and `fewshot` on entity tasks
    text.py           raw text -> tokens with character offsets, and spans back to text
    predictors.py     a trained artefact, or zero-shot entity-prompt, opened as a span predictor
    predict.py        `predict` on entity tasks: raw text rows in, character spans out
    serve.py          `serve` on entity tasks: POST /entities
    suite_units.py    `eval` suite units on entity tasks: their data and one unit's run
"""
