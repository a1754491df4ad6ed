"""Ctrl-C during a wait: every rollout poll stops at once, not when its wait would end.

Rollouts are waited for in worker threads, and Python delivers SIGINT to the main thread
only. The handler ``install`` sets ``STOP`` before raising KeyboardInterrupt there; each
worker's next pause between polls (``sleep``) sees it and ends its wait with
KeyboardInterrupt too, so that the command unwinds, releases its lock and exits.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP = threading.Event()


def sleep(seconds: float) -> None:
    """``time.sleep`` that ends early, with KeyboardInterrupt, once the user interrupted."""
    if STOP.wait(max(0.0, seconds)):
        raise KeyboardInterrupt


def on_interrupt(signum: int, frame: FrameType | None) -> None:
    STOP.set()
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through ``on_interrupt`` (from the main thread; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_interrupt)
