"""Putting trained models to work: `predict` over files and `serve` over HTTP, for every kind of task.

    registry.py           method -> how to rebuild its classifier from a saved folder (the extension point)
    classifier.py         examples -> label log-probabilities, whatever the method
    entity_predictors.py  an entity task's predictor: a trained artefact, or zero-shot entity-prompt
    answering.py          what answers `predict`'s and `serve`'s rows, per kind of task (a RowPredictor)
    rows.py               input rows from a file or standard input
    predict.py            streaming input rows to output rows, resumable
    serve.py              the ASGI app with its micro-batching queue
    peft_export.py        a soft prompt as a PEFT adapter
"""
