"""``sgdepth-ros bench-rig``: several cameras on one node against one node process per camera (issue 15).

For each camera count N (1, 2, 4 by default) and each network size, two layouts run one after the other on an
isolated loopback ROS graph: **one node** serving ``cameras: [cam0 … camN-1]`` with one predictor, and **separate
nodes**: N single-camera node processes, one per camera. Topics are the same in both (``/<ns>/camK/image`` …), so
one client process drives both alike: every camera publishes rgb8 frames (1242×375 by default) with CameraInfo at
``--rate`` for ``--seconds``, stamped with the current time, and subscribes to every output of every camera. Per
camera: frames sent, delivered (depth arrived), dropped by the node for a newer frame of the same camera (its
/diagnostics counters), lost in transport (sent but never received by the node, or published but never arrived),
output rate and stamp → depth latency. Per layout: the aggregate output rate and the memory of the node process(es)
(VmRSS, its peak VmHWM and PSS from /proc; GPU memory from nvidia-smi where there is one). The layouts alternate
which runs first from one camera count to the next.

Before the rigs, a predictor-level micro-benchmark: ``Predictor.predict_batch`` of 4 frames against 4 sequential
``predict`` calls per backend (torch and OpenVINO on the CPU, torch on CUDA when there is one): the batching ratio
behind the node's ``batch_size`` auto (every camera on CUDA, 1 on the CPU). It also fills the OpenVINO graph cache
for every task set the node warms up, so no node process pays (or shows in its peak memory) the conversion.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import arg_types
from .dds_bench import (OUTPUTS, camera_messages, gpu_memory_mib, percentile, process_cpu_seconds,
                        process_memory_kib)

ONE_NODE, SEPARATE = "one node", "separate nodes"
RELIABLE_QOS_DEPTH = 100  # --qos reliable: history depth of the inputs (both ends) and outputs
MICRO_BATCH = 4
TASK_SETS = (("depth",), ("segmentation",), ("depth", "segmentation"))  # what the node warms up (all outputs on)
REJECTED_AT_INPUT = ("bad_stamp", "duplicate_stamp", "out_of_order_stamp")
SIZE_SECTION = "## Several cameras, one node (`sgdepth-ros bench-rig`)"


def _camera_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be camera counts like 1,2,4, got {text!r}") from None
    if not counts or any(not 1 <= n <= 16 for n in counts) or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"camera counts must be distinct, each within 1..16, got {text!r}")
    return counts


def _input_sizes(text: str) -> tuple[tuple[int, int] | None, ...]:
    """'640x192,model' → ((640, 192), None): None = the checkpoint's own input size."""
    sizes = []
    for part in text.split(","):
        if part.strip() == "model":
            sizes.append(None)
            continue
        w, h = arg_types.size(part.strip())
        if w % 32 or h % 32:
            raise argparse.ArgumentTypeError(f"a network size must be positive multiples of 32, got {part!r}")
        sizes.append((w, h))
    return tuple(sizes)


def _outputs(text: str) -> tuple[str, ...]:
    chosen = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in chosen if t not in OUTPUTS]
    if "depth" not in chosen or unknown:
        raise argparse.ArgumentTypeError(f"outputs must include depth and come from {', '.join(OUTPUTS)}; "
                                         f"got {text!r}")
    return chosen


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped default model, else random "
                   "weights; speed does not depend on the weights)")
    p.add_argument("--cameras", type=_camera_counts, default=(1, 2, 4), help="camera counts to run (default 1,2,4)")
    p.add_argument("--width", type=int, default=1242, help="camera image width")
    p.add_argument("--height", type=int, default=375, help="camera image height")
    p.add_argument("--input-size", type=_input_sizes, default=((640, 192), None),
                   help="network sizes, comma-separated WxH or 'model' (the checkpoint's own); default 640x192,model")
    p.add_argument("--rate", type=arg_types.positive_float, default=10.0, help="frames per second per camera")
    p.add_argument("--seconds", type=arg_types.positive_float, default=15.0, help="publishing time per configuration")
    p.add_argument("--outputs", type=_outputs, default=OUTPUTS,
                   help=f"outputs subscribed per camera (default all: {','.join(OUTPUTS)})")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="fp32", help="fp32, or fp16/bf16 on CUDA")
    p.add_argument("--batch-size", type=arg_types.count, default=0,
                   help="the one node's batch_size parameter (0 = auto: every camera on CUDA, 1 on the CPU)")
    p.add_argument("--qos", choices=("default", "reliable"), default="default",
                   help="default: the node's input QoS (best effort, depth 1); reliable: reliable inputs and outputs "
                        f"of depth {RELIABLE_QOS_DEPTH}, so no frame is lost in transport and every frame sent is "
                        "delivered or dropped by the node")
    p.add_argument("--micro-iterations", type=arg_types.count, default=5,
                   help="timed iterations of the predict_batch micro-benchmark per backend (0 = skip it)")
    p.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to update ('-' prints only)")


# ---- predictor micro-benchmark ---------------------------------------------------------------------------------

def _micro_backends(device: str) -> list[tuple[str, str]]:
    """(backend, device) pairs to compare: torch and OpenVINO on the CPU, torch on CUDA when there is one."""
    import torch

    from ..predictor import _has_openvino

    pairs = [] if device.startswith("cuda") else [("torch", "cpu")] + ([("openvino", "cpu")] if _has_openvino() else [])
    if device != "cpu" and torch.cuda.is_available():
        pairs.append(("torch", device if device.startswith("cuda") else "cuda"))
    return pairs


def _micro(model: str, size: tuple[int, int] | None, rgbs: list[np.ndarray], iterations: int, device: str,
           precision: str) -> list[dict]:
    """Per backend: ms of 4 sequential ``predict`` calls and of one ``predict_batch`` of the same 4 frames
    (interleaved, order alternating), after a warm-up of both (and, for OpenVINO, of every task set the node
    warms up, which fills the on-disk graph cache the node processes read)."""
    import gc

    from ..predictor import Predictor

    rows = []
    for backend, dev in _micro_backends(device):
        predictor = Predictor(model, device=dev, backend=backend, input_size=size, scale_factor=1.0,
                              precision=precision if dev.startswith("cuda") else "fp32")
        for tasks in TASK_SETS:
            predictor.predict(rgbs[0], tasks=tasks)
        predictor.predict_batch(rgbs)
        sequential, batched = [], []
        for i in range(iterations):
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                t0 = time.perf_counter()
                if which == 0:
                    for rgb in rgbs:
                        predictor.predict(rgb)
                    sequential.append((time.perf_counter() - t0) * 1e3)
                else:
                    predictor.predict_batch(rgbs)
                    batched.append((time.perf_counter() - t0) * 1e3)
        rows.append({"backend": f"{predictor.backend.name}-{dev}" if backend == "torch" else predictor.backend.name,
                     "network": "{}x{}".format(*predictor.input_size), "sequential": sequential, "batched": batched})
        del predictor
        gc.collect()
    return rows


# ---- the rig over DDS ------------------------------------------------------------------------------------------

@dataclass
class CameraResult:
    sent: list[int] = field(default_factory=list)  # stamps (ns) published
    counts: dict = field(default_factory=dict)  # the node's counters over the measured window (deltas)
    latency_ms: list[float] = field(default_factory=list)  # stamp → depth arrival of each delivered frame
    predict_p50_ms: float = float("nan")  # the node's predictor time (its diagnostic) after the window

    @property
    def delivered(self) -> int:
        return len(self.latency_ms)

    @property
    def lost_to_node(self) -> int:
        return len(self.sent) - self.counts.get("received", 0)

    @property
    def lost_from_node(self) -> int:
        return self.counts.get("processed", 0) - self.delivered


@dataclass
class RigResult:
    layout: str
    cameras: dict[str, CameraResult]
    seconds: float  # measured publishing time
    processes: int
    memory_kib: dict  # rss, hwm, pss summed over the node processes (None: not readable)
    gpu_mib: float | None
    node_cpu_s: float | None = None  # CPU time the node process(es) used from the first frame sent until settled

    @property
    def delivered(self) -> int:
        return sum(c.delivered for c in self.cameras.values())

    @property
    def frames_per_cpu_s(self) -> float | None:
        return self.delivered / self.node_cpu_s if self.node_cpu_s else None

    def output_hz(self, camera: str) -> float:
        return self.cameras[camera].delivered / self.seconds

    @property
    def aggregate_output_hz(self) -> float:
        return self.delivered / self.seconds

    @property
    def aggregate_input_hz(self) -> float:
        return sum(len(c.sent) for c in self.cameras.values()) / self.seconds


def _frame_counts(diag: dict) -> dict:
    counts = {k: int(diag.get(f"frames_{k}", 0)) for k in ("received", "processed", "dropped", "idle")}
    counts["rejected"] = sum(int(diag.get(f"errors/{kind}", 0)) for kind in REJECTED_AT_INPUT)
    return counts


def _accounted(diag: dict) -> bool:
    """Every frame the node received is processed, dropped, idle or rejected: no frame in hand."""
    c = _frame_counts(diag)
    return bool(diag) and c["received"] == c["processed"] + c["dropped"] + c["idle"] + c["rejected"]


def _stamp_probe_class():
    from ..ros.probe import Probe

    class StampProbe(Probe):
        """A Probe that keeps only the header of each output (arrival times by stamp; no image data piles up).
        Its camera_info publisher is volatile: the node's second, transient-local camera_info subscription (for
        latched publishers) cannot match it, which is expected and not reported."""

        def __init__(self, *args, **kwargs):
            from rclpy.event_handler import PublisherEventCallbacks
            from sensor_msgs.msg import CameraInfo

            super().__init__(*args, **kwargs)
            qos, topic = self.info_pub.qos_profile, self.info_pub.topic_name
            self.destroy_publisher(self.info_pub)
            self.info_pub = self.create_publisher(
                CameraInfo, topic, qos, event_callbacks=PublisherEventCallbacks(incompatible_qos=lambda event: None))

        def _recorder(self, topic: str):
            if topic in ("/diagnostics", "semantic/labels"):
                return super()._recorder(topic)

            def record(msg) -> None:
                self.messages[topic].append((self.get_clock().now().nanoseconds, _Header(msg.header)))
            return record

    return StampProbe


class _Header:
    __slots__ = ("header",)

    def __init__(self, header):
        self.header = header


class _Client:
    """One probe per camera (namespace /<ns>/<camera>), all spun by one executor (:class:`RigProbes`)."""

    def __init__(self, namespace: str, cameras: list[str], layout: str, outputs: tuple[str, ...], reliable: bool):
        from ..ros.probe import RigProbes

        probe_class = _stamp_probe_class()
        probes = {}
        for camera in cameras:
            status = (f"/{namespace}/sgdepth/{camera}: sgdepth inference" if layout == ONE_NODE
                      else f"/{namespace}/{camera}/sgdepth: sgdepth inference")
            probes[camera] = probe_class(list(outputs), name=f"bench_{camera}", namespace=f"/{namespace}/{camera}",
                                         status=status, input_depth=RELIABLE_QOS_DEPTH if reliable else 10)
        self.rig = RigProbes(probes)
        self.probes = self.rig.probes
        self.spin_until = self.rig.spin_until
        self.destroy = self.rig.destroy

    def depth_arrivals(self, camera: str) -> dict[int, int]:
        from ..ros.sync import stamp_ns

        return {stamp_ns(m.header): t for t, m in self.probes[camera].messages["depth"]}


def _node_params(model: str, size: tuple[int, int] | None, args) -> dict:
    params = {"model_path": model, "device": args.device, "precision": args.precision, "scale_mode": "fixed",
              "scale_factor": 1.0, "log_period_sec": 0.0, "diagnostics_period_sec": 0.5,
              "input_width": size[0] if size else 0, "input_height": size[1] if size else 0}
    if args.qos == "reliable":
        params.update(input_qos_reliability="reliable", input_qos_depth=RELIABLE_QOS_DEPTH,
                      output_qos_depth=RELIABLE_QOS_DEPTH)
    return params


def _start_nodes(layout: str, namespace: str, cameras: list[str], params: dict, env: dict, batch_size: int) -> list:
    from ..ros.launcher import NodeProcess

    if layout == ONE_NODE:
        nodes = [NodeProcess({**params, "cameras": cameras, "batch_size": batch_size}, env,
                             extra_args=("-r", f"__ns:=/{namespace}"))]
    else:
        nodes = [NodeProcess(params, env, extra_args=("-r", f"__ns:=/{namespace}/{camera}")) for camera in cameras]
    for node in nodes:  # all at once: N separate processes start in parallel, as a launch file starts them
        node.start()
    return nodes


def _warm_up(client: _Client, messages: dict, nodes: list) -> None:
    """One frame per camera until its depth arrives (sent again under a new stamp every 5 s: a frame sent while
    discovery settles can be lost), then until each camera's counters have settled → nothing in hand."""
    pending = set(messages)
    deadline = time.monotonic() + 180
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"cameras {sorted(pending)} got no depth within 180 s:\n{nodes[0].output[-3000:]}")
        _check_alive(nodes)
        stamps = {}
        for camera in pending:
            stamp = client.probes[camera].get_clock().now().to_msg()
            image, info = messages[camera]
            image.header.stamp = info.header.stamp = stamp
            client.probes[camera].info_pub.publish(info)
            client.probes[camera].image_pub.publish(image)
            stamps[camera] = stamp.sec * 10 ** 9 + stamp.nanosec
        client.spin_until(lambda: all(stamps[c] in client.depth_arrivals(c) for c in pending), 5.0)
        pending = {c for c in pending if stamps[c] not in client.depth_arrivals(c)}
    for camera, probe in client.probes.items():
        client.spin_until(lambda: _accounted(probe.latest_diagnostics()) and _frame_counts(
            probe.latest_diagnostics())["processed"] >= len(client.depth_arrivals(camera)), 30)


def _check_alive(nodes: list) -> None:
    for node in nodes:
        if node.returncode is not None:
            raise RuntimeError(f"sgdepth_node exited with {node.returncode}:\n{node.output[-3000:]}")


def _publish(client: _Client, messages: dict, rate: float, seconds: float) -> tuple[dict[str, list[int]], float]:
    """Every camera publishes CameraInfo + image each 1/rate s (all cameras on the same tick, as a synchronised
    rig) for ``seconds`` → the stamps sent per camera and the publishing time (s)."""
    sent = {camera: [] for camera in messages}
    ticks = max(1, round(seconds * rate))
    clock = next(iter(client.probes.values())).get_clock()
    start = time.monotonic()
    for i in range(ticks):
        stamp = clock.now().to_msg()
        for camera, (image, info) in messages.items():
            image.header.stamp = info.header.stamp = stamp
            client.probes[camera].info_pub.publish(info)
            client.probes[camera].image_pub.publish(image)
            sent[camera].append(stamp.sec * 10 ** 9 + stamp.nanosec)
        client.spin_until(lambda: False, max(0.0, start + (i + 1) / rate - time.monotonic()))
    return sent, time.monotonic() - start


def _settle(client: _Client, sent: dict[str, list[int]], reports_before: dict[str, int], timeout: float = 30) -> None:
    """Until every camera's node counters report nothing in hand (two reports after publishing ended, so they
    include every frame that reached the node) and every frame the node published has arrived (or ``timeout``)."""
    def settled(camera: str) -> bool:
        probe = client.probes[camera]
        history = probe.diagnostics_history()
        if len(history) < reports_before[camera] + 2 or not _accounted(history[-1]):
            return False
        return _frame_counts(history[-1])["processed"] <= _processed_seen(client, camera)

    client.spin_until(lambda: all(settled(c) for c in sent), timeout)
    client.spin_until(lambda: False, 0.3)


def _processed_seen(client: _Client, camera: str) -> int:
    """Depth messages this camera's probe got since its node started (warm-up included)."""
    return len(client.depth_arrivals(camera))


def _run_rig(layout: str, n: int, namespace: str, model: str, size, rgb: np.ndarray, env: dict, args) -> RigResult:
    cameras = [f"cam{i}" for i in range(n)]
    nodes = _start_nodes(layout, namespace, cameras, _node_params(model, size, args), env, args.batch_size)
    client = None
    t0 = time.monotonic()
    try:
        for node in nodes:
            node.wait_for_output("active:", timeout=600)
        t1 = time.monotonic()
        client = _Client(namespace, cameras, layout, args.outputs, args.qos == "reliable")
        for camera, probe in client.probes.items():
            if not probe.wait_for_subscribers(60):
                raise RuntimeError(f"{camera}: the node's topics did not match within 60 s:\n{nodes[0].output}")
        clock = next(iter(client.probes.values())).get_clock()
        messages = {camera: camera_messages(rgb, clock.now().to_msg(), f"{camera}_optical") for camera in cameras}
        _warm_up(client, messages, nodes)
        t2 = time.monotonic()
        before = {c: _frame_counts(p.latest_diagnostics()) for c, p in client.probes.items()}
        pids = [node.process.pid for node in nodes]
        cpu_before = [process_cpu_seconds(pid) for pid in pids]
        sent, seconds = _publish(client, messages, args.rate, args.seconds)
        _check_alive(nodes)
        t3 = time.monotonic()
        _settle(client, sent, {c: len(p.diagnostics_history()) for c, p in client.probes.items()})
        print(f"  node(s) active after {t1 - t0:.1f} s, matched and warm after {t2 - t1:.1f} s more, published for "
              f"{seconds:.1f} s, settled in {time.monotonic() - t3:.1f} s", flush=True)
        cpu_after = [process_cpu_seconds(pid) for pid in pids]
        cpu = (None if None in cpu_before + cpu_after
               else sum(after - before for before, after in zip(cpu_before, cpu_after)))
        memory = {"rss": 0, "hwm": 0, "pss": 0}
        for pid in pids:
            for key, value in process_memory_kib(pid).items():
                memory[key] = None if value is None or memory[key] is None else memory[key] + value
        results = {}
        for camera, probe in client.probes.items():
            diag = probe.latest_diagnostics()
            after = _frame_counts(diag)
            arrived = client.depth_arrivals(camera)
            latency = [(arrived[s] - s) / 1e6 for s in sent[camera] if s in arrived]
            results[camera] = CameraResult(sent[camera], {k: after[k] - before[camera][k] for k in after}, latency,
                                           float(diag.get("predict_p50_ms", "nan")))
        return RigResult(layout, results, seconds, len(nodes), memory, gpu_memory_mib(pids), cpu)
    finally:
        if client is not None:
            client.destroy()
        for node in nodes:  # SIGINT to all first: they shut down in parallel
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGINT)
        for node in nodes:
            try:
                node.process.wait(30)
            except subprocess.TimeoutExpired:
                node.process.kill()
            node.stop()


# ---- tables ------------------------------------------------------------------------------------------------------

def _mib(kib) -> str:
    return "–" if kib is None else f"{kib / 1024:.0f}"


def _summary_rows(results: list[tuple[int, RigResult]]) -> list[str]:
    rows = ["| cameras | layout | node processes | input Hz (all cameras) | output Hz (all cameras) | output Hz per "
            "camera, min / max | stamp→depth p50 / p95 ms (slowest camera) | dropped by the node | lost in transport "
            "| node CPU s (cores) | frames per node CPU-s | RSS MiB | peak RSS (VmHWM) MiB | PSS MiB | GPU MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, r in results:
        rates = [r.output_hz(c) for c in r.cameras]
        slowest = max(r.cameras.values(), key=lambda c: np.median(c.latency_ms) if c.latency_ms else np.inf)
        sent = sum(len(c.sent) for c in r.cameras.values())
        dropped = sum(c.counts.get("dropped", 0) for c in r.cameras.values())
        lost = sum(c.lost_to_node + c.lost_from_node for c in r.cameras.values())
        gpu = "not measured" if r.gpu_mib is None else f"{r.gpu_mib:.0f}"
        cpu = "–" if r.node_cpu_s is None else f"{r.node_cpu_s:.1f} ({r.node_cpu_s / r.seconds:.2f})"
        efficiency = "–" if r.frames_per_cpu_s is None else f"{r.frames_per_cpu_s:.2f}"
        rows.append(f"| {n} | {r.layout} | {r.processes} | {r.aggregate_input_hz:.1f} | {r.aggregate_output_hz:.2f} | "
                    f"{min(rates):.2f} / {max(rates):.2f} | {percentile(slowest.latency_ms, 50)} / "
                    f"{percentile(slowest.latency_ms, 95)} | {dropped} of {sent} ({100 * dropped / sent:.0f} %) | "
                    f"{lost} | {cpu} | {efficiency} | {_mib(r.memory_kib['rss'])} | {_mib(r.memory_kib['hwm'])} | "
                    f"{_mib(r.memory_kib['pss'])} | {gpu} |")
    return rows


def _camera_rows(results: list[tuple[int, RigResult]]) -> list[str]:
    rows = ["| cameras | layout | camera | sent | delivered | dropped by the node | lost to / from the node | "
            "output Hz | stamp→depth p50 / p95 ms | predictor in the node p50 ms |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for n, r in results:
        for name, c in r.cameras.items():
            dropped = c.counts.get("dropped", 0)
            rows.append(f"| {n} | {r.layout} | {name} | {len(c.sent)} | {c.delivered} | {dropped} "
                        f"({100 * dropped / max(1, len(c.sent)):.0f} %) | "
                        f"{c.lost_to_node} / {c.lost_from_node} | {r.output_hz(name):.2f} | "
                        f"{percentile(c.latency_ms, 50)} / {percentile(c.latency_ms, 95)} | {c.predict_p50_ms:.0f} |")
    return rows


def _batching_ratio(row: dict) -> float:
    """Throughput of predict_batch over sequential predict calls, from each one's best time (the least disturbed
    by other work on the machine)."""
    return min(row["sequential"]) / min(row["batched"])


def _micro_rows(rows: list[dict]) -> list[str]:
    lines = [f"| backend | network | {MICRO_BATCH} × `predict()` ms best / p50 | `predict_batch()` of {MICRO_BATCH} "
             "ms best / p50 | batched throughput / sequential (best times) |", "|---|---|---|---|---|"]
    for row in rows:
        seq, batch = row["sequential"], row["batched"]
        lines.append(f"| {row['backend']} | {row['network']} | {min(seq):.0f} / {np.median(seq):.0f} | "
                     f"{min(batch):.0f} / {np.median(batch):.0f} | **{_batching_ratio(row):.2f}×** |")
    return lines


def _yes(met: bool | None) -> str:
    return "not measured" if met is None else ("**yes**" if met else "**no**")


def _target_rows(results: list[tuple[int, RigResult]], micro: list[dict]) -> list[str]:
    by = {(n, r.layout): r for n, r in results}
    counts = sorted({n for n, _ in results})
    top = counts[-1]
    lines = ["| target (issue 15) | measured | met |", "|---|---|---|"]
    one, many = by.get((1, SEPARATE)), by.get((top, ONE_NODE))
    if one and many and top > 1 and one.memory_kib["hwm"] and many.memory_kib["hwm"]:
        peak = many.memory_kib["hwm"] / one.memory_kib["hwm"]
        now = many.memory_kib["rss"] / one.memory_kib["rss"]
        lines.append(f"| memory of one process serving {top} cameras ≤ 1.3× one camera's (the single-camera node) | "
                     f"peak RSS {_mib(many.memory_kib['hwm'])} / {_mib(one.memory_kib['hwm'])} MiB = {peak:.2f}×; "
                     f"RSS after the run {now:.2f}× | {_yes(peak <= 1.3)} |")
    else:
        lines.append("| memory of one process serving 4 cameras ≤ 1.3× one camera's | needs 1 and more cameras "
                     "| not measured |")
    single, separate = by.get((top, ONE_NODE)), by.get((top, SEPARATE))
    if single and separate and top > 1:
        a, b = single.aggregate_output_hz, separate.aggregate_output_hz
        per_cpu = ""
        if single.frames_per_cpu_s and separate.frames_per_cpu_s:
            x, y = single.frames_per_cpu_s, separate.frames_per_cpu_s
            per_cpu = f"; per node CPU-second {x:.2f} against {y:.2f} frames ({x / y:.2f}×)"
        lines.append(f"| aggregate throughput of one node with {top} cameras ≥ {top} separate processes | "
                     f"{a:.2f} Hz against {b:.2f} Hz ({a / b:.2f}×){per_cpu} | {_yes(a >= b)} |")
        lines.append(_fairness_row(single, top))
    cuda = [row for row in micro if "cuda" in row["backend"]]
    if cuda:
        ratio = _batching_ratio(cuda[0])
        lines.append(f"| on a GPU, batched inference of 4 frames ≥ 2× the throughput of 4 sequential ones | "
                     f"{ratio:.2f}× ({cuda[0]['backend']}, {cuda[0]['network']}) | {_yes(ratio >= 2.0)} |")
    else:
        lines.append("| on a GPU, batched inference of 4 frames ≥ 2× the throughput of 4 sequential ones | "
                     "no GPU on this machine | not measured |")
    return lines


def _fairness_row(result: RigResult, n: int) -> str:
    """Per-camera output rates within 10 % of each other. Where the window holds so few frames per camera that one
    frame is more than 10 %, rates one frame apart are as equal as the window can tell (said so, not hidden)."""
    delivered = [c.delivered for c in result.cameras.values()]
    rates = [result.output_hz(c) for c in result.cameras]
    overloaded = result.aggregate_output_hz < 0.9 * result.aggregate_input_hz
    spread = min(rates) / max(rates) if max(rates) > 0 else 0.0
    text = (f"| per-camera output rates within 10 % of each other under overload (one node, {n} cameras) | slowest / "
            f"fastest camera {min(rates):.2f} / {max(rates):.2f} Hz = {spread:.2f}"
            f"{'' if overloaded else ' (not overloaded here)'}")
    if spread >= 0.9:
        return f"{text} | {_yes(True)} |"
    if max(delivered) - min(delivered) <= 1 and max(delivered) < 10:
        return (f"{text}: {min(delivered)} against {max(delivered)} frames, one frame apart, the least two counts "
                f"can differ; this window cannot resolve 10 % at {max(delivered)} frames per camera | "
                "within one frame |")
    return f"{text} | {_yes(False)} |"


def _load_note(load: float) -> str:
    """What the load average before the run says about the numbers (a shared machine disturbs them)."""
    cores = os.cpu_count() or 1
    text = f"Load average (1 min) just before the run: {load:.1f} on {cores} cores"
    if load <= 0.5 * cores:
        return text + "."
    return (text + ": other work shared the machine, so wall-clock rates, latencies and the micro-benchmark are "
            "disturbed; read the layouts' rates with their node CPU columns, and take this run's throughput verdicts "
            "as this shared machine's, not the design's.")


def _command_line(args) -> str:
    sizes = ",".join("model" if s is None else f"{s[0]}x{s[1]}" for s in args.input_size)
    parts = [f"--cameras {','.join(map(str, args.cameras))}", f"--seconds {args.seconds:g}", f"--rate {args.rate:g}",
             f"--input-size {sizes}"]
    if (args.width, args.height) != (1242, 375):
        parts += [f"--width {args.width}", f"--height {args.height}"]
    if args.qos != "default":
        parts.append(f"--qos {args.qos}")
    if args.batch_size:
        parts.append(f"--batch-size {args.batch_size}")
    if args.outputs != OUTPUTS:
        parts.append(f"--outputs {','.join(args.outputs)}")
    if args.device != "auto":
        parts.append(f"--device {args.device}")
    return "sgdepth-ros bench-rig " + " ".join(parts)


def _order(counts: tuple[int, ...]) -> list[tuple[int, str]]:
    """The layouts alternate which runs first from one camera count to the next (one node first for the first)."""
    plan = []
    for i, n in enumerate(counts):
        plan += [(n, ONE_NODE), (n, SEPARATE)] if i % 2 == 0 else [(n, SEPARATE), (n, ONE_NODE)]
    return plan


def run(args: argparse.Namespace) -> int:
    import rclpy

    from ..default_model import default_model_path
    from ..model.checkpoint import read_metadata
    from ..ros.launcher import ros_environment
    from ..samples import road_scene
    from .helpers import machine_description, make_untrained_checkpoint, update_markdown

    rgb = road_scene(args.width, args.height)
    micro_rgbs = [road_scene(args.width, args.height, seed=i) for i in range(MICRO_BATCH)]
    sections = []
    started, load_before = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        shipped = default_model_path()
        model = args.model or str(shipped or make_untrained_checkpoint(Path(tmp) / "random.safetensors"))
        meta = read_metadata(model)
        own = (int(meta["input_size"]["width"]), int(meta["input_size"]["height"]))
        weights = f"{Path(model).name} ({meta.get('provenance', {}).get('source', 'unknown')})"
        env = ros_environment()
        os.environ.update(env)
        rclpy.init(domain_id=int(env["ROS_DOMAIN_ID"]))
        try:
            index = 0
            for size in dict.fromkeys(args.input_size):
                network = size or own
                label = f"{network[0]}×{network[1]}" + (" (the model's own size)" if size is None or size == own
                                                         else "")
                micro = (_micro(model, size, micro_rgbs, args.micro_iterations, args.device, args.precision)
                         if args.micro_iterations else [])
                results = []
                for n, layout in _order(args.cameras):
                    print(f"network {label}: {n} camera(s), {layout} …", flush=True)
                    result = _run_rig(layout, n, f"rig{index}", model, size, rgb, env, args)
                    results.append((n, result))
                    index += 1
                results.sort(key=lambda item: (item[0], item[1].layout != ONE_NODE))
                sections.append((label, micro, results))
        finally:
            rclpy.try_shutdown()
    elapsed = time.monotonic() - started
    lines = [
        SIZE_SECTION, "",
        f"N cameras at {args.rate:g} Hz each ({args.width}×{args.height} rgb8 + CameraInfo per camera, all cameras on "
        f"the same tick, published by one client process for {args.seconds:g} s per configuration) → "
        f"**one node** (`cameras: [cam0 … camN-1]`, one predictor, `batch_size` {args.batch_size or 'auto'}) or "
        f"**separate nodes** (N single-camera `sgdepth_node` processes, started together) → every output of every "
        f"camera ({', '.join(args.outputs)}) at network resolution, received by the client. Node defaults otherwise "
        f"({'best-effort inputs of depth 1, reliable outputs' if args.qos == 'default' else 'reliable QoS, depth 100'}"
        f"), device {args.device}; weights: {weights} (speed does not depend on them). The layouts ran one after the "
        "other, alternating which went first from one camera count to the next; each configuration started fresh "
        f"processes after the OpenVINO graph cache was filled. Whole run: {elapsed / 60:.1f} min.", "",
        f"- machine: {machine_description()}",
        f"- date: {dt.date.today().isoformat()}; command: `{_command_line(args)}`",
        f"- this machine has {os.cpu_count()} logical cores: the separate processes (each running the backend with "
        "its own default thread count) and the client compete for the same cores, so on a small CPU the separate "
        f"layout pays oversubscription as well as N copies of the model and runtime. {_load_note(load_before)}", "",
        "Output Hz = depth images delivered per second of publishing; latency = arrival − header stamp. Per camera, "
        "every frame sent is delivered, dropped by the node for a newer frame of the same camera (its /diagnostics "
        "counters), or lost in transport (to the node: never received, as best-effort inputs of depth 1 allow; from "
        "the node: published but not arrived). Memory: the node process(es) after the run, summed over processes: "
        "VmRSS, its peak VmHWM (start-up included) and PSS (shared pages split among the processes sharing them, so "
        "the sum does not count the shared libraries N times). Node CPU s = CPU time of the node process(es) from "
        "the first frame published until the counters settled, (cores) = that per second of publishing: where other "
        "work shares the machine, the kernel gives N processes about N shares of it against one share for the one "
        "node, so the separate layout gets more of the machine; frames per node CPU-second depends less on that.",
    ]
    for label, micro, results in sections:
        lines += ["", f"### Network {label}", ""]
        if micro:
            lines += [f"Predictor micro-benchmark: {MICRO_BATCH} frames of {args.width}×{args.height} through "
                      f"`Predictor.predict_batch` against {MICRO_BATCH} sequential `predict` calls, both tasks, "
                      f"{args.micro_iterations} interleaved iterations after a warm-up. Above 1×, batching pays; "
                      "the OpenVINO backend runs its compiled single-image graph once per image of a batch, so it "
                      "shares only the call overhead.", ""] + _micro_rows(micro) + [""]
        lines += _summary_rows(results) + ["", "Per camera:", ""] + _camera_rows(results) + [""]
        lines += ["Targets:", ""] + _target_rows(results, micro)
    text = "\n".join(lines)
    print(text)
    if args.output != "-":
        update_markdown(Path(args.output), text, key="rig")
        print(f"\nwritten to {args.output}")
    return 0
