"""Putting trained classifiers to work: saved artefacts, `predict` over files and `serve` over HTTP.

    artefacts.py   the folder every method leaves (save, load, verify, show)
    registry.py    method -> how to rebuild its classifier from a saved folder (the extension point)
    classifier.py  examples -> label log-probabilities, whatever the method
    predict.py     streaming input rows to output rows, resumable
    serve.py       the ASGI app with its micro-batching queue
"""
