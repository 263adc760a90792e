"""Run-time statistics of the node: rates, timings, error counters and the diagnostics level (ROS-free, thread-safe)."""
from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque

import numpy as np

OK, WARN = 0, 1  # diagnostic_msgs/DiagnosticStatus levels used by the node


class NodeStats:
    """Counts and windows that the node's diagnostics and periodic log line report.

    Rates and the input→output ratio cover the last ``window_s`` seconds (monotonic clock);
    timings (ms) keep the last ``samples`` values. Per processed frame the node reports:
    ``latency`` (header stamp → outputs published, ROS clock), ``predict`` (the predictor's
    preprocess + forward + postprocess), ``forward`` (the network alone) and ``processing``
    (the worker's whole turn: decode, predict, render, publish).
    """

    def __init__(self, window_s: float = 5.0, samples: int = 200):
        self._lock = threading.Lock()
        self.window_s = window_s
        self._received: deque[float] = deque()
        self._idle: deque[float] = deque()
        self._published: deque[float] = deque()
        self.latency_ms: deque[float] = deque(maxlen=samples)
        self.predict_ms: deque[float] = deque(maxlen=samples)
        self.forward_ms: deque[float] = deque(maxlen=samples)
        self.processing_ms: deque[float] = deque(maxlen=samples)
        self.errors: Counter[str] = Counter()
        self.frames_received = 0
        self.frames_processed = 0
        self.frames_dropped = 0
        self.frames_idle = 0  # not processed because nobody subscribed to any output
        self.warmup_ms = math.nan  # the configure-time warm-up (NaN until one ran)
        self.first_predict_ms = math.nan  # the first processed frame's predict time after the warm-up

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
            self._idle.append(time.monotonic())

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def warmed_up(self, elapsed_ms: float) -> None:
        """A warm-up ran (at configure); the next processed frame is the 'first' one again."""
        with self._lock:
            self.warmup_ms = float(elapsed_ms)
            self.first_predict_ms = math.nan

    def processed(self, latency_ms: float | None, timings: dict[str, float], processing_ms: float) -> None:
        """One frame published. ``latency_ms`` None: no meaningful stamp (zero stamp), not sampled;
        ``timings``: the Prediction's per-stage milliseconds (preprocess, forward, postprocess)."""
        predict = float(sum(timings.values()))
        with self._lock:
            self.frames_processed += 1
            self._published.append(time.monotonic())
            if latency_ms is not None:
                self.latency_ms.append(latency_ms)
            self.predict_ms.append(predict)
            self.forward_ms.append(float(timings.get("forward", math.nan)))
            self.processing_ms.append(processing_ms)
            if math.isnan(self.first_predict_ms):
                self.first_predict_ms = predict

    def snapshot(self) -> dict:
        """A consistent copy: rates (Hz), window counts and input→output ratio, p50/p95 timings (ms, NaN
        before any frame), warm-up and first-frame times, counters, errors by kind."""
        with self._lock:
            now = time.monotonic()
            for events in (self._received, self._idle, self._published):
                while events and events[0] < now - self.window_s:
                    events.popleft()
            to_serve = max(0, len(self._received) - len(self._idle))
            served = len(self._published)
            ratio = to_serve / served if served else (math.inf if to_serve else math.nan)
            latency = np.array(self.latency_ms, np.float64)
            return {
                "input_rate_hz": _rate(self._received, now), "output_rate_hz": _rate(self._published, now),
                "window_frames_to_serve": to_serve, "window_frames_served": served, "input_output_ratio": ratio,
                "latency_p50_ms": _percentile(latency, 50), "latency_p95_ms": _percentile(latency, 95),
                "predict_p50_ms": _percentile(np.array(self.predict_ms, np.float64), 50),
                "forward_p50_ms": _percentile(np.array(self.forward_ms, np.float64), 50),
                "processing_p50_ms": _percentile(np.array(self.processing_ms, np.float64), 50),
                "warmup_ms": self.warmup_ms, "first_predict_ms": self.first_predict_ms,
                "frames_received": self.frames_received, "frames_processed": self.frames_processed,
                "frames_dropped": self.frames_dropped, "frames_idle": self.frames_idle,
                "errors": dict(self.errors),
            }


def _rate(events: deque[float], now: float) -> float:
    if len(events) < 2:
        return 0.0
    span = max(now - events[0], events[-1] - events[0])
    return (len(events) - 1) / span if span > 0 else 0.0


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def diagnostic_level(snapshot: dict, previous: dict | None, max_ratio: float) -> tuple[int, str]:
    """The node's /diagnostics level and message from two consecutive snapshots.

    WARN when a message was rejected since ``previous`` (any ``errors/<kind>`` grew), or when over the
    last window the frames to serve (received, less those idle without a subscriber) exceed ``max_ratio``
    × the frames served (with at least one served counted, so a handful of frames at start-up is not
    judged); ``max_ratio`` 0 turns that check off. Frames dropped by the newest-frame policy alone are
    by design and keep OK (they are counted in ``frames_dropped``).
    """
    before = (previous or {}).get("errors", {})
    new = {kind: count - before.get(kind, 0) for kind, count in snapshot["errors"].items()
           if count > before.get(kind, 0)}
    if new:
        return WARN, "rejected since the last report: " + ", ".join(f"{k} {n}" for k, n in sorted(new.items()))
    to_serve, served = snapshot["window_frames_to_serve"], snapshot["window_frames_served"]
    if max_ratio > 0 and to_serve > max_ratio * max(served, 1):
        return WARN, (f"serving {served} of {to_serve} frames in the last window (ratio above "
                      f"warn_input_output_ratio {max_ratio:g}): the input is much faster than the node")
    dropped = snapshot["frames_dropped"] - (previous or {}).get("frames_dropped", 0)
    return OK, f"ok ({dropped} older frames skipped for newer ones)" if dropped > 0 else "ok"


def stamp_problem(sec: int, nanosec: int) -> str | None:
    """Error kind of a malformed header stamp, else None: ``bad_stamp`` for a negative ``sec`` or
    ``nanosec`` ≥ 1e9 (not a normalised builtin_interfaces/Time: the frame is rejected), ``zero_stamp``
    for 0.0 (a driver that does not stamp: counted and warned, the frame is still served)."""
    if sec < 0 or not 0 <= nanosec < 1_000_000_000:
        return "bad_stamp"
    if sec == 0 and nanosec == 0:
        return "zero_stamp"
    return None


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
