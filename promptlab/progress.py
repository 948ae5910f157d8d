"""Progress bars on stderr, shown only for long runs in a terminal."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

LONG_RUN = 64  # items; shorter runs finish before a bar is worth drawing


def progress_bar(total: int, description: str, **options) -> tqdm:
    return tqdm(total=total, desc=description, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=None if total >= LONG_RUN else True, **options)
