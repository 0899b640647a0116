"""Per-stage wall time and peak resident memory, sampled while the stage runs."""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:  # not Linux: fall back to the high-water mark
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class StageMeter:
    """`with StageMeter() as m: ...` then `m.seconds`, `m.peak_rss_mb` (sampled every `interval` s)."""

    interval: float = 0.02
    seconds: float = 0.0
    peak_rss_bytes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss_bytes = max(self.peak_rss_bytes, current_rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> StageMeter:
        self._start = time.perf_counter()
        self.peak_rss_bytes = current_rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss_bytes = max(self.peak_rss_bytes, current_rss_bytes())
        self.seconds = time.perf_counter() - self._start

    @property
    def peak_rss_mb(self) -> float:
        return round(self.peak_rss_bytes / 2**20, 1)


def timed(fn):
    """`fn()`'s value and its wall seconds."""
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def best_of(n: int, fn) -> float:
    """The fastest of `n` timed calls of `fn` (seconds): a reference figure less disturbed by other work."""
    return min(timed(fn)[1] for _ in range(n))
