"""Continual learning: a sequence of tasks learned one after another, and how much each strategy forgets.

    suite.py       the suite file: tasks in order, k, seeds, strategies with their options
    strategies.py  prompt-per-task, progressive, lora-per-task, finetune-sequential, replay
    router.py      picks the task of an example when it is not given (frozen features, logistic regression)
    metrics.py     average accuracy, backward and forward transfer over the accuracy matrix
    runner.py      runs every strategy over the sequence, resumably, into results.jsonl
    report.py      matrix.csv, summary.json, heatmap.png, curve.png, report.md
"""
