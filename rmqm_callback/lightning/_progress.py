"""Progress of a long evaluation on process 0, fed by the stream's progress hook.

On a terminal, a tqdm bar that closes at the end. Anywhere else (a redirected log, a notebook's
captured stderr, a batch job), no cursor codes and no empty first frame: one line at the end of
the evaluation, with the number of blocks and the seconds it took.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rmqm_callback.evaluation._stream import ProgressHook


def progress_bar(description: str, stream: TextIO | None = None) -> ProgressHook:
    """A hook ``hook(done, total)`` that shows the evaluation's progress on ``stream`` (default stderr).

    Examples:
        >>> import io
        >>> log = io.StringIO()  # not a terminal: one line when done == total
        >>> hook = progress_bar("RMQM noise", log)
        >>> hook(1, 2), hook(2, 2)
        (None, None)
        >>> log.getvalue().startswith("RMQM noise: 2 blocks in ")
        True

    """
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        return _bar(description, stream)
    start = time.perf_counter()

    def line(done: int, total: int | None) -> None:
        if done == total:
            print(f"{description}: {done} blocks in {time.perf_counter() - start:.1f} s", file=stream, flush=True)

    return line


def _bar(description: str, stream: TextIO) -> ProgressHook:
    from tqdm.auto import tqdm

    bar = tqdm(desc=description, total=None, leave=False, file=stream, dynamic_ncols=True)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return update
