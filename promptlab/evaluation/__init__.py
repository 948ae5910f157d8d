"""Eval suites: a grid of runs from one YAML file, run resumably and reported (docs/architecture.md, layer 8).

    suite.py           the suite file, checked strictly, and its grid of runs
    runner.py          runs each unit once into results.jsonl, skipping finished ones
    units/             one unit's data and run, per kind of task (text.py, entities.py)
    shared_results.py  the locked results file, and its form for several processes
    report.py          summary.csv, kshot_curve.png, report.md
"""
