"""CUDA execution for the PyTorch backend: pinned host staging, asynchronous copies and CUDA graphs.

:class:`CudaExecutor` runs a forward function (device input [N,3,H,W] float32 → tuple of device outputs) on one
CUDA device:

- the numpy input is copied into a reused page-locked (pinned) host buffer, sent with a non-blocking copy, and the
  outputs come back the same way into pinned buffers, with one stream synchronisation per call;
- with ``graphs=True`` each (input shape, tasks) key seen again is captured once as a CUDA graph
  (:class:`GraphCache`) and replayed from then on: one launch instead of ~100 kernel launches per frame. A shape
  seen for the first time runs eagerly; when the cache is full, or a capture fails, that key runs eagerly, with one
  log line.

Nothing here is used on the CPU (the CPU path of :class:`sgdepth_ros.backends.TorchBackend` stays plain eager).
"""
from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from typing import Any, Callable, Hashable

import numpy as np
import torch

LOG = logging.getLogger(__name__)
MAX_GRAPHS = 16  # (batch, tasks) keys: e.g. 1..4 cameras × 3 task sets, with room
CAPTURE_AFTER = 1  # eager runs of a key before it is captured (a one-off shape is never captured)
WARMUP_RUNS = 2  # side-stream runs before a capture (cuDNN/cuBLAS lazy set-up must not happen inside it)
MAX_STAGING = 32  # pinned host buffers kept (by shape and dtype), least recently used dropped first


class GraphCache:
    """Captured runners keyed by anything hashable, with a bounded size and eager fallbacks.

    capture(key) → runner (or raises); :meth:`get` returns the key's runner, capturing it on the call after the
    key was run ``capture_after`` times eagerly, or None: run this call eagerly. A key whose capture raised is not
    tried again (one warning); once ``max_graphs`` runners exist, new keys stay eager (one warning).
    """

    def __init__(self, capture: Callable[[Hashable], Any], max_graphs: int = MAX_GRAPHS,
                 capture_after: int = CAPTURE_AFTER):
        if max_graphs < 1 or capture_after < 0:
            raise ValueError(f"max_graphs must be ≥ 1 and capture_after ≥ 0, got {max_graphs}, {capture_after}")
        self._capture = capture
        self.max_graphs, self.capture_after = max_graphs, capture_after
        self.runners: dict[Hashable, Any] = {}
        self.failed: set[Hashable] = set()
        self._seen: Counter = Counter()
        self._full_warned = False

    def get(self, key: Hashable):
        runner = self.runners.get(key)
        if runner is not None or key in self.failed:
            return runner
        if len(self.runners) >= self.max_graphs:
            if not self._full_warned:
                self._full_warned = True
                LOG.warning("CUDA graphs: %d captured (the most kept); %s and any further input shape or task set "
                            "run eagerly", self.max_graphs, key)
            return None
        if self._seen[key] < self.capture_after:
            self._seen[key] += 1
            return None
        try:
            runner = self._capture(key)
        except Exception as exc:  # noqa: BLE001 — any capture failure means: run this key eagerly
            self.failed.add(key)
            LOG.warning("CUDA graph capture failed for %s (%s: %s); this input shape and task set run eagerly",
                        key, type(exc).__name__, exc)
            return None
        self._seen.pop(key, None)
        self.runners[key] = runner
        return runner


class _Captured:
    """One captured graph with its static input and outputs (device tensors the graph reads and writes)."""

    def __init__(self, graph, static_in: torch.Tensor, static_out: tuple[torch.Tensor, ...]):
        self.graph, self.static_in, self.static_out = graph, static_in, static_out

    def __call__(self, host_in: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.static_in.copy_(host_in, non_blocking=True)
        self.graph.replay()
        return self.static_out


class CudaExecutor:
    """Runs ``forward(tasks, x)`` on a CUDA device with pinned, asynchronous copies and (optionally) CUDA graphs.

    forward: (tasks tuple, device tensor [N,3,H,W] float32) → tuple of device tensors (the final dtypes: what
    comes back to the host); it must be capturable (no host synchronisation, no data-dependent shapes).
    """

    def __init__(self, forward: Callable[[tuple[str, ...], torch.Tensor], tuple[torch.Tensor, ...]],
                 device: torch.device, graphs: bool = True, max_graphs: int = MAX_GRAPHS):
        if device.type != "cuda":
            raise ValueError(f"CudaExecutor needs a CUDA device, got {device}")
        self.forward, self.device = forward, device
        self.graphs = GraphCache(self._capture, max_graphs) if graphs else None
        self._staging: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()  # static buffers and staging are shared state: one call at a time

    def _host(self, role: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A reused pinned host buffer for (role, shape, dtype)."""
        key = (role, shape, dtype)
        buf = self._staging.pop(key, None)
        if buf is None:
            buf = torch.empty(shape, dtype=dtype, pin_memory=True)
            while len(self._staging) >= MAX_STAGING:
                self._staging.popitem(last=False)
        self._staging[key] = buf
        return buf

    def _capture(self, key) -> _Captured:
        shape, tasks = key
        static_in = torch.zeros(shape, dtype=torch.float32, device=self.device)
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self.forward(tasks, static_in)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: another thread of the process (the node's executor) may use CUDA during the capture
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = tuple(self.forward(tasks, static_in))
        LOG.info("CUDA graph captured for input %s, tasks %s", "x".join(map(str, shape)), ",".join(tasks))
        return _Captured(graph, static_in, static_out)

    @torch.inference_mode()
    def run(self, batch: np.ndarray, tasks: tuple[str, ...]) -> list[np.ndarray]:
        """batch: [N,3,H,W] float32 → the forward's outputs as numpy arrays (copies, owned by the caller)."""
        with self._lock, torch.cuda.device(self.device):
            batch = np.ascontiguousarray(batch, dtype=np.float32)
            host_in = self._host("in", batch.shape, torch.float32)
            host_in.copy_(torch.from_numpy(batch))
            runner = self.graphs.get((tuple(batch.shape), tasks)) if self.graphs is not None else None
            if runner is not None:
                outs = runner(host_in)
            else:
                outs = self.forward(tasks, host_in.to(self.device, non_blocking=True))
            host_outs = []
            for i, out in enumerate(outs):
                host = self._host(f"out{i}", tuple(out.shape), out.dtype)
                host.copy_(out, non_blocking=True)
                host_outs.append(host)
            torch.cuda.current_stream(self.device).synchronize()
            return [h.numpy().copy() for h in host_outs]
