"""Scores of predictions (docs/architecture.md, layer 5).

    text.py       accuracy, macro-F1 and the confusion matrix over label names
    entities.py   entity-level precision, recall and F1 (seqeval)
    rejection.py  out of scope: answers below a probability threshold, and what rejecting them costs
"""
