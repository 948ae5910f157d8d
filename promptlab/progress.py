"""Progress bars on stderr, shown only for long runs in a terminal."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

from promptlab.distributed import process_rank

LONG_RUN = 64  # items; shorter runs finish before a bar is worth drawing


def progress_bar(total: int, description: str, **options) -> tqdm:
    shown = total >= LONG_RUN and process_rank() == 0  # under a launcher, the main process's bar only
    return tqdm(total=total, desc=description, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=None if shown else True, **options)
