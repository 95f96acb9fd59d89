"""A small progress indicator on stderr for work that may take seconds (rendering with the SDKs).

    with progress("rendering stepfunctions"):
        files = render(spec, "stepfunctions")

Nothing is printed when the work finishes within ``delay`` seconds (a render-cache hit).
After that, on a terminal, one line is kept up to date: ``rendering stepfunctions ... 3s``, and
cleared when the work ends; anywhere else (CI logs, pipes) a single line is written once,
``rendering stepfunctions ...``. Never on stdout, which carries results.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import IO, Iterator

DELAY_SECONDS = 1.0
TICK_SECONDS = 0.5


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def progress(label: str, stream: IO[str] | None = None, delay: float = DELAY_SECONDS,
             tick: float = TICK_SECONDS) -> Iterator[None]:
    """Show ``label ...`` on stderr while the body runs, once it has run ``delay`` seconds."""
    out = stream if stream is not None else sys.stderr
    tty = _is_tty(out)
    done = threading.Event()
    shown = threading.Event()
    lock = threading.Lock()
    start = time.monotonic()

    def write(text: str) -> None:
        with lock:
            if not done.is_set() or not tty:
                try:
                    out.write(text)
                    out.flush()
                except (OSError, ValueError):  # stderr closed or gone: progress is not worth an error
                    pass

    def show() -> None:
        if done.wait(delay):
            return
        shown.set()
        if not tty:
            write(f"{label} ...\n")
            return
        last = None
        while not done.is_set():
            text = f"\r{label} ... {time.monotonic() - start:.0f}s\033[K"
            if text != last:
                write(text)
                last = text
            done.wait(tick)

    thread = threading.Thread(target=show, name="mlpipe-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with lock:
            done.set()
            if tty and shown.is_set():
                with contextlib.suppress(OSError, ValueError):
                    out.write("\r\033[K")  # the line is cleared; what follows is printed as usual
                    out.flush()
        thread.join(timeout=1.0)


def rendering(target: str) -> str:
    """The label for rendering ``target`` (``all``: both definitions)."""
    return "rendering " + ("stepfunctions and sagemaker" if target == "all" else target)
