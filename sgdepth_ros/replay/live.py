"""Live replay: play the bag over DDS to a real ``sgdepth_node`` process and record what it publishes.

The node runs as its own process on a loopback-only graph (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, the Fast DDS
profile for large images) under ``namespace``, its inputs remapped to the bag's topics. The domain is the caller's
``ROS_DOMAIN_ID`` when set, else a random one that no DDS participant on this machine uses
(:func:`sgdepth_ros.ros.domain.replay_domain_id`); ``LiveReplay.domain_id`` says which. The caller's process is left
as it was: the ROS environment goes to the node process, and this process's rclpy context, executor and node are its
own (the environment is set only while they are created, then restored).

This process plays the recorded image and CameraInfo messages verbatim at the bag's pace × ``rate`` (and ``/clock``
= bag time when ``use_sim_time``), subscribes to the outputs and pairs them with their frame by header stamp.

A frame is *delivered* when its depth and semantic images arrived (latency = arrival of its last output − the wall
time it was sent, both on this process's clock); it is *dropped* when a newer frame's outputs arrived first (the
node keeps only the newest frame while busy) or nothing came within ``drain_s`` after the last frame. The node's
own counters (frames received / processed / dropped, its stamp→publish latency) come from ``/diagnostics``, taken
once they have settled (two successive reports alike), not after a fixed wait.

With ``camera_height`` the node runs ``scale_mode: camera_height``: a frame's depth and points come on ``depth`` /
``points`` (metres) once the node has a scale, else on ``depth/relative`` / ``points/relative``. The node publishes
the factor of each metric frame on ``depth/scale`` (std_msgs/Float32, no header) just before that frame's depth, so
the n-th ``depth/scale`` message is the factor of the n-th metric ``depth`` message: both are reliable topics of one
node, delivered in order. A metric frame is scored once its factor has arrived (its depth taken back to model units,
as offline); one whose factor never arrives is counted in ``scale_unpaired`` and not scored. The node does not
publish its per-frame estimates (only the latest, in ``/diagnostics``), so live reports have none.

Several cameras (:class:`.live_camera.LiveCamera` each): one node process with ``cameras: [..]``, camera ``<name>``'s
inputs ``<name>/image`` (or ``image/compressed``, ``<name>.input_transport: compressed``) and ``<name>/camera_info``
remapped to the bag's topics, its outputs on ``<name>/depth`` …. All cameras' frames are played interleaved in bag-time
order; pairing, delivered / dropped and latency are per camera (the node keeps the newest frame of each camera), and
so are the node's counters (its /diagnostics status ``<node fqn>/<name>: sgdepth inference``).
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from .frames import ReplayFrame
from .live_camera import LiveCamera, counters
from .recorder import FrameRecorder


@contextmanager
def scoped_environ(changes: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``changes`` applied inside the block, exactly as before after it (also on error)."""
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class LiveSettings:
    """model: checkpoint path; rate: multiple of the bag's pace (> 0); use_sim_time: publish /clock and run the node
    on it; namespace: the node's; node_params: extra node parameters (override the defaults below);
    drain_s: how long to wait for outputs after the last frame; camera_height: metres, runs the node with
    ``scale_mode: camera_height`` (the scale measured from the road plane) instead of the fixed/relative scale."""

    model: str
    rate: float = 1.0
    use_sim_time: bool = False
    namespace: str = "/sgdepth"
    metric: bool = False
    scale_factor: float | None = None
    device: str = "auto"
    node_params: dict = field(default_factory=dict)
    drain_s: float = 10.0
    startup_timeout_s: float = 300.0
    camera_height: float | None = None

    def params(self) -> dict:
        """The node's parameters for a replay (scores need depth and labels at the camera's size)."""
        mode = "camera_height" if self.camera_height else "fixed" if self.metric else "relative"
        params = {"model_path": self.model, "device": self.device, "output_resolution": "input",
                  "scale_mode": mode, "scale_factor": 0.0 if self.camera_height else self.scale_factor or 0.0,
                  "input_qos_reliability": "reliable", "output_qos_depth": 10, "log_period_sec": 0.0,
                  "diagnostics_period_sec": 0.5, "use_sim_time": self.use_sim_time}
        if self.camera_height:
            params["camera_height"] = float(self.camera_height)
        params.update(self.node_params)
        return params


def node_parameters(settings: LiveSettings, cameras: list[LiveCamera]) -> dict:
    """The node's parameters for a replay of ``cameras``: :meth:`LiveSettings.params`, the input transport of each
    camera (named cameras: ``cameras: [..]`` and ``<name>: {input_transport, camera_height}``); the user's
    ``node_params`` win, a dotted name ``<name>.<parameter>`` nested under its camera."""
    params = settings.params()
    named = [camera.name for camera in cameras if camera.name]
    if named:
        params["cameras"] = named
    for camera in cameras:
        ours = camera.node_params()
        if camera.name:
            params[camera.name] = ours
        else:
            params.update(ours)
    for name, value in settings.node_params.items():
        if "." in name:
            params.pop(name, None)
            *path, leaf = name.split(".")
            node = params
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = value
        else:
            params[name] = value
    return params


class LiveReplay:
    """Start the node, play frames, collect outputs: ``with LiveReplay(settings, output_keys, …) as live:``.

    One camera (today's topics): ``output_topics`` (key → topic relative to the namespace), ``image_topic``,
    ``info_topic``, ``compressed``, ``relative_topics`` (key → the topic an output takes while the node has no
    metric scale yet: scale_mode camera_height, ``depth/relative``, ``points/relative``); :meth:`play`.
    Several cameras: ``cameras``, one :class:`LiveCamera` each (the other arguments unused); :meth:`play_cameras`.
    ``domain_id`` / ``domain_source`` ("ROS_DOMAIN_ID": the caller's; "free": picked) are set on entering.
    """

    def __init__(self, settings: LiveSettings, output_topics: dict[str, str] | None = None,
                 image_topic: str | None = None, info_topic: str | None = None, compressed: bool = False,
                 relative_topics: dict[str, str] | None = None, cameras: list[LiveCamera] | None = None):
        if not settings.rate > 0:
            raise ValueError(f"rate must be > 0, got {settings.rate}")
        if cameras is None:
            cameras = [LiveCamera(None, image_topic, info_topic, compressed, output_topics, relative_topics)]
        self.settings = settings
        self.cameras = {camera.name: camera for camera in cameras}
        self._measured = bool(settings.camera_height)
        self.node = None
        self.node_output = ""
        self.domain_id: int | None = None
        self.domain_source = ""
        self._context = self._executor = None
        self._clock_pub = None
        self._last_clock = -1  # newest /clock published (ns): the clock never goes back

    @property
    def probe(self):
        """The first camera's probe (the only one with one camera)."""
        return next(iter(self.cameras.values())).probe

    # -- lifetime ----------------------------------------------------------------------------------

    def __enter__(self) -> "LiveReplay":
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        from ..ros.domain import replay_domain_id
        from ..ros.launcher import NodeProcess, ros_environment

        self.domain_id, self.domain_source = replay_domain_id(os.environ)
        env = ros_environment(domain_id=self.domain_id)  # a copy of os.environ: for the node process
        remaps = [arg for camera in self.cameras.values() for arg in camera.remaps()]
        remaps += ["-r", f"__ns:={self.settings.namespace}"]
        self.node = NodeProcess(node_parameters(self.settings, list(self.cameras.values())), env,
                                extra_args=tuple(remaps)).start()
        # rcl and Fast DDS read the discovery range, profile file and log folder when the context and its first node
        # are created: set them for that moment only, in this process
        with scoped_environ({k: v for k, v in env.items() if os.environ.get(k) != v}):
            self._context = rclpy.Context()
            rclpy.init(context=self._context, domain_id=self.domain_id,
                       signal_handler_options=SignalHandlerOptions.NO)  # the caller's signal handling stays
            self._executor = SingleThreadedExecutor(context=self._context)
            for camera in self.cameras.values():
                self._executor.add_node(camera.attach(self.settings.namespace, self._context, self._measured))
        if self.settings.use_sim_time:
            from rclpy.qos import QoSProfile
            from rosgraph_msgs.msg import Clock

            self._clock_pub = self.probe.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        self.node.wait_for_output("active:", timeout=self.settings.startup_timeout_s)
        if not self.probe.spin_until(lambda: all(camera.matched() for camera in self.cameras.values()), 60):
            raise RuntimeError("the node's topics did not match within 60 s:\n" + self.node.output)

    def __exit__(self, *exc) -> None:
        """Stop the node; destroy this replay's nodes, executor and context (nothing else of rclpy)."""
        for camera in self.cameras.values():
            if camera.probe is not None:
                camera.probe.destroy_node()
                camera.probe = None
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        if self._context is not None:
            self._context.try_shutdown()
            self._context = None
        if self.node is not None:
            self.node.stop()
            self.node_output = self.node.output

    # -- playing -----------------------------------------------------------------------------------

    def play(self, frames: Iterable[ReplayFrame], recorder: FrameRecorder, progress=None) -> dict:
        """One camera: play every frame at its bag time / rate; hand delivered frames to ``recorder``.

        Returns ``{"sent", "delivered", "dropped", "incomplete", "scale_unpaired", "latency_ms" (send → last output
        of each delivered frame), "depth_latency_ms" (send → depth), "wall_s" (first send → last delivery),
        "node": the final diagnostics, "node_alive": bool}``.
        """
        (name,) = self.cameras
        result = self.play_cameras(((name, frame) for frame in frames), {name: recorder}, progress)
        return {**result["cameras"][name], "wall_s": result["wall_s"], "node_alive": result["node_alive"]}

    def play_cameras(self, frames: Iterable[tuple[str | None, ReplayFrame]], recorders: dict[str | None,
                     FrameRecorder], progress=None) -> dict:
        """Play ``(camera, frame)`` pairs at their bag time / rate (interleaved as given); hand each camera's
        delivered frames to its recorder. Returns ``{"cameras": name → {…as :meth:`LiveCamera.result`, "node": its
        final diagnostics}, "wall_s", "node_alive"}``."""
        start_wall = time.monotonic()
        origin = None  # (first stamp, wall time it was due)
        for name, frame in frames:
            if origin is None:
                origin = (frame.stamp_ns, time.monotonic())
            due = origin[1] + (frame.stamp_ns - origin[0]) / 1e9 / self.settings.rate
            self._spin_until(due, origin, recorders)
            recorders[name].write_inputs(frame)
            self._publish_clock(frame.stamp_ns)
            self.cameras[name].publish(frame)
            if progress is not None:
                progress.update(1)
            if self.node.returncode is not None:
                raise RuntimeError(f"sgdepth_node exited with {self.node.returncode} during the replay:\n"
                                   + self.node.output[-2000:])
        deadline = time.monotonic() + self.settings.drain_s
        while any(camera.pending for camera in self.cameras.values()) and time.monotonic() < deadline:
            self._spin_until(time.monotonic() + 0.1, origin, recorders)
        for name, camera in self.cameras.items():
            camera.finish_all(recorders[name])
        deliveries = [camera.last_delivery for camera in self.cameras.values() if camera.last_delivery is not None]
        last = max(deliveries) if deliveries else time.monotonic()
        nodes = self._final_diagnostics(origin, recorders)
        return {"cameras": {name: {**camera.result(), "node": nodes[name]} for name, camera in self.cameras.items()},
                "wall_s": last - start_wall, "node_alive": self.node.returncode is None}

    def _final_diagnostics(self, origin, recorders: dict) -> dict:
        """Each camera's diagnostics once the node is done: two successive statuses with the same frame counters, the
        last counting at least the camera's delivered frames (waits up to ``drain_s``; else the newest status)."""
        namespace = self.settings.namespace

        def settled(camera: LiveCamera) -> bool:
            history = camera.statuses(namespace)
            return len(history) >= 2 and counters(history[-1]) == counters(history[-2]) \
                and counters(history[-1])[1] >= camera.stats["delivered"]

        deadline = time.monotonic() + max(self.settings.drain_s, 4 * self.settings.params()["diagnostics_period_sec"])
        while time.monotonic() < deadline and self.node.returncode is None \
                and not all(settled(camera) for camera in self.cameras.values()):
            self._spin_until(time.monotonic() + 0.1, origin, recorders)
        return {name: (camera.statuses(namespace) or [{}])[-1] for name, camera in self.cameras.items()}

    def _spin_until(self, wall_deadline: float, origin, recorders: dict) -> None:
        while True:
            remaining = wall_deadline - time.monotonic()
            self._executor.spin_once(timeout_sec=max(0.0, min(0.01, remaining)))
            if origin is not None:
                self._publish_clock(origin[0] + int((time.monotonic() - origin[1]) * self.settings.rate * 1e9))
            for name, camera in self.cameras.items():
                camera.collect(recorders[name])
            if remaining <= 0:
                return

    def _publish_clock(self, stamp_ns: int) -> None:
        if self._clock_pub is None:
            return
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        if stamp_ns <= self._last_clock:
            return
        self._last_clock = stamp_ns
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        self._clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))
