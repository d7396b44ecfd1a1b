"""A progress bar for long evaluations, fed by ``accumulate``'s progress hook."""

from __future__ import annotations

import sys

from rmqm_callback.evaluation._stream import ProgressHook


def progress_bar(description: str) -> ProgressHook:
    """A tqdm bar on stderr that ``hook(done, total)`` advances and closes at the end."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=description, total=None, leave=False, file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return update
