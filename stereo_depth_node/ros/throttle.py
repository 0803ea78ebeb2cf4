"""Throttling of per-frame error lines: one line per kind of error per period, in bounded memory."""
from __future__ import annotations

import threading


class ErrorThrottle:
    """Says whether an error of a given kind may be logged now.

    Kinds are the texts of errors that repeat frame after frame (or, for texts that change with
    every message, such as a stamp, a stable key): a camera that keeps sending bad frames gives one
    line per period, not one per frame. Kinds not seen for a period are forgotten, so a stream of
    ever-new texts cannot grow the table without bound.
    """

    def __init__(self, period_s: float, prune_above: int = 256) -> None:
        self.period_s = period_s
        self._prune_above = prune_above
        self._last_logged: dict[str, float] = {}
        self._lock = threading.Lock()  # the executor and the inference worker both report

    def allow(self, kind: str, now: float) -> bool:
        with self._lock:
            last = self._last_logged.get(kind)
            if last is not None and now - last < self.period_s:
                return False
            if len(self._last_logged) >= self._prune_above:
                self._last_logged = {k: t for k, t in self._last_logged.items()
                                     if now - t < self.period_s}
            self._last_logged[kind] = now
            return True

    def __len__(self) -> int:
        return len(self._last_logged)
