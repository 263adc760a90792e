"""Run-time statistics of the node: rates, latency percentiles, error counters (ROS-free, thread-safe)."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np


class NodeStats:
    """Counts and windows that the node's diagnostics and periodic log line report.

    Rates are events per second over the last ``window_s`` seconds (monotonic clock);
    latencies (ms) keep the last ``samples`` values.
    """

    def __init__(self, window_s: float = 5.0, samples: int = 200):
        self._lock = threading.Lock()
        self._window_s = window_s
        self._received: deque[float] = deque()
        self._published: deque[float] = deque()
        self.latency_ms: deque[float] = deque(maxlen=samples)
        self.inference_ms: deque[float] = deque(maxlen=samples)
        self.errors: Counter[str] = Counter()
        self.frames_received = 0
        self.frames_processed = 0
        self.frames_dropped = 0
        self.frames_idle = 0  # not processed because nobody subscribed to any output

    def received(self) -> None:
        with self._lock:
            self.frames_received += 1
            self._received.append(time.monotonic())

    def dropped(self, count: int = 1) -> None:
        with self._lock:
            self.frames_dropped += count

    def idle(self) -> None:
        with self._lock:
            self.frames_idle += 1

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def processed(self, latency_ms: float, inference_ms: float) -> None:
        with self._lock:
            self.frames_processed += 1
            self._published.append(time.monotonic())
            self.latency_ms.append(latency_ms)
            self.inference_ms.append(inference_ms)

    def snapshot(self) -> dict:
        """A consistent copy: rates (Hz), p50/p95 latency and inference (ms, NaN before any frame), counters."""
        with self._lock:
            now = time.monotonic()
            rates = [self._rate(events, now) for events in (self._received, self._published)]
            latency = np.array(self.latency_ms, np.float64)
            inference = np.array(self.inference_ms, np.float64)
            return {
                "input_rate_hz": rates[0], "output_rate_hz": rates[1],
                "latency_p50_ms": _percentile(latency, 50), "latency_p95_ms": _percentile(latency, 95),
                "inference_p50_ms": _percentile(inference, 50),
                "frames_received": self.frames_received, "frames_processed": self.frames_processed,
                "frames_dropped": self.frames_dropped, "frames_idle": self.frames_idle,
                "errors": dict(self.errors),
            }

    def _rate(self, events: deque[float], now: float) -> float:
        while events and events[0] < now - self._window_s:
            events.popleft()
        if len(events) < 2:
            return 0.0
        span = max(now - events[0], events[-1] - events[0])
        return (len(events) - 1) / span if span > 0 else 0.0


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


class StampOrder:
    """Rejects duplicate and out-of-order header stamps; a backward jump larger than
    ``reset_after_ns`` (a bag restarted, a simulator reset) is accepted as a new timeline."""

    def __init__(self, reset_after_ns: int = 1_000_000_000):
        self._last: int | None = None
        self._reset_after_ns = reset_after_ns

    def check(self, stamp_ns: int) -> str | None:
        """None when the stamp is newer than the last accepted one (and remember it), else the error kind."""
        last = self._last
        if last is not None and stamp_ns == last:
            return "duplicate_stamp"
        if last is not None and last - self._reset_after_ns <= stamp_ns < last:
            return "out_of_order_stamp"
        self._last = stamp_ns
        return None

    def reset(self) -> None:
        self._last = None


class RateLimitedLog:
    """Logs each error kind at most once per ``period_s`` seconds, telling how many were suppressed."""

    def __init__(self, log, period_s: float = 5.0):
        self._log = log
        self._period_s = period_s
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, kind: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -1e18) < self._period_s:
                self._suppressed[kind] += 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        self._log(f"[{kind}] {message}{more}")
