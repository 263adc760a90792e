"""Temporal filter for per-frame metric scale estimates (ROS-free).

One model on one camera has one true scale that drifts slowly (load, tyre pressure, pitch on braking); per-frame
estimates from the ground plane are noisy and now and then wrong (a car filling the road, a label error). The filter
keeps the last ``window`` accepted estimates and reports their median (in log space, so ×2 and ×½ errors weigh the
same); a new estimate further than ``outlier_ratio`` from the current median is refused once the window holds
``min_samples`` values, and counted. If ``relock_after`` estimates in a row are refused and agree among
themselves, the scale really changed (or the first estimates were the outliers): the window restarts from them.
``reset()`` starts a new timeline (the node calls it when stamps jump back).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class ScaleState:
    """The filter's output. scale: metres per model unit (None until ``min_samples`` estimates were accepted);
    spread: robust relative spread of the window (1.4826·MAD of log scale ≈ relative std; 0 with one sample);
    samples: accepted estimates in the window; accepted/rejected/missing: counts since the last reset."""

    scale: float | None
    spread: float
    samples: int
    accepted: int
    rejected: int
    missing: int


class ScaleFilter:
    """Median-of-window filter over per-frame scale estimates with outlier gating.

    window: how many accepted estimates are kept (≥ 1). min_samples: accepted estimates needed before a scale is
    reported (1 ≤ min_samples ≤ window). outlier_ratio: an estimate s is refused when
    max(s/m, m/s) > outlier_ratio for the current median m (> 1; inf turns the gate off).
    relock_after: refused estimates in a row that, when within ``outlier_ratio`` of their own median, replace the
    window (≥ 1).
    """

    def __init__(self, window: int = 30, min_samples: int = 3, outlier_ratio: float = 1.5, relock_after: int = 10):
        if window < 1:
            raise ValueError(f"window must be ≥ 1, got {window}")
        if not 1 <= min_samples <= window:
            raise ValueError(f"min_samples must be in [1, window={window}], got {min_samples}")
        if not outlier_ratio > 1:
            raise ValueError(f"outlier_ratio must be > 1, got {outlier_ratio}")
        if relock_after < 1:
            raise ValueError(f"relock_after must be ≥ 1, got {relock_after}")
        self.window, self.min_samples, self.outlier_ratio = window, min_samples, outlier_ratio
        self.relock_after = relock_after
        self._logs: deque[float] = deque(maxlen=window)
        self._refused: deque[float] = deque(maxlen=relock_after)
        self._accepted = self._rejected = self._missing = 0

    def reset(self) -> None:
        """Forget everything: a new drive, a new timeline, another camera mounting."""
        self._logs.clear()
        self._refused.clear()
        self._accepted = self._rejected = self._missing = 0

    def update(self, estimate: float | None) -> ScaleState:
        """Feed one frame's estimate (None or non-finite/non-positive: the frame had no usable road)."""
        if estimate is None or not math.isfinite(estimate) or estimate <= 0:
            self._missing += 1
            return self.state()
        log = math.log(estimate)
        gate = math.log(self.outlier_ratio)
        if len(self._logs) >= self.min_samples and abs(log - self._median()) > gate:
            self._rejected += 1
            self._refused.append(log)
            if len(self._refused) == self.relock_after:
                centre = _median(list(self._refused))
                if all(abs(v - centre) <= gate for v in self._refused):
                    self._logs.clear()
                    self._logs.extend(self._refused)
                    self._refused.clear()
            return self.state()
        self._refused.clear()
        self._logs.append(log)
        self._accepted += 1
        return self.state()

    def state(self) -> ScaleState:
        n = len(self._logs)
        if n < self.min_samples:
            return ScaleState(None, 0.0, n, self._accepted, self._rejected, self._missing)
        median = self._median()
        mad = _median([abs(v - median) for v in self._logs])
        return ScaleState(math.exp(median), 1.4826 * mad, n, self._accepted, self._rejected, self._missing)

    def _median(self) -> float:
        return _median(list(self._logs))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
