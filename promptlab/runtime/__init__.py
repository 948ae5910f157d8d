"""What every stage runs on (docs/architecture.md, layer 1, with errors.py and paths.py).

    outputs.py      result files written atomically
    progress.py     progress bars and plain progress lines
    distributed.py  several processes under a launcher, one otherwise
"""
