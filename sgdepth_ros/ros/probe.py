"""A client node that feeds ``sgdepth_node`` and records what it publishes (tests, benchmarks, live replay).

    rclpy.init(domain_id=…)
    probe = Probe(["depth/relative", "semantic"])
    probe.wait_for_subscribers()
    probe.info_pub.publish(camera_info)
    probe.image_pub.publish(image)
    probe.spin_until(lambda: probe.received("semantic"), timeout=30)

Every output message is kept with its receive time (ns, ROS clock) in ``probe.messages[topic]``.
"""
from __future__ import annotations

import time
from collections import defaultdict

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import String

TOPIC_TYPES = {"depth": Image, "depth/relative": Image, "depth/camera_info": CameraInfo, "depth/color": Image,
               "semantic": Image, "semantic/color": Image, "semantic/overlay": Image, "points": PointCloud2,
               "points/relative": PointCloud2}


class Probe(Node):
    def __init__(self, outputs: list[str], name: str = "sgdepth_probe", namespace: str = "",
                 input_reliability: str = "reliable", compressed: bool = False, image_topic: str | None = None,
                 info_topic: str = "camera_info", context=None, input_depth: int = 10, status: str | None = None):
        """``input_depth``: history depth of the image and camera_info publishers (with reliable QoS, a burst of up
        to that many frames reaches a reader whose own depth is as large without any being overwritten).
        ``status``: the name of the /diagnostics status to read (default: the sgdepth node in this namespace's; a
        camera of a multi-camera node: "/<node namespace>/sgdepth/<camera>: sgdepth inference")."""
        self._status_name = status
        self._service_clients: dict = {}
        super().__init__(name, namespace=namespace, context=context)  # context None: rclpy's default one
        policy = ReliabilityPolicy.RELIABLE if input_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=input_depth, reliability=policy)
        image_topic = image_topic or ("image/compressed" if compressed else "image")
        self.image_pub = self.create_publisher(CompressedImage if compressed else Image, image_topic, qos)
        self.info_pub = self.create_publisher(CameraInfo, info_topic, qos)
        self.messages: dict[str, list] = defaultdict(list)
        self._subs = [self.create_subscription(TOPIC_TYPES[t], t, self._recorder(t),
                                               QoSProfile(depth=max(50, input_depth)))
                      for t in outputs]
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._subs.append(self.create_subscription(String, "semantic/labels", self._recorder("semantic/labels"),
                                                   latched))
        self._subs.append(self.create_subscription(DiagnosticArray, "/diagnostics", self._recorder("/diagnostics"),
                                                   QoSProfile(depth=50)))

    def _recorder(self, topic: str):
        def record(msg) -> None:
            self.messages[topic].append((self.get_clock().now().nanoseconds, msg))
        return record

    def received(self, topic: str) -> list:
        """Messages received on ``topic`` so far (without their receive times)."""
        return [m for _, m in self.messages[topic]]

    def spin_until(self, condition, timeout: float) -> bool:
        """Process callbacks until ``condition()`` is true or ``timeout`` seconds passed; returns the condition."""
        import rclpy

        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            rclpy.spin_once(self, executor=self.executor, timeout_sec=min(0.05, remaining))  # own executor if any
        return True

    def call_service(self, srv_type, service: str, request, timeout: float = 60.0,
                     resend_after: float | None = 10.0):
        """Calls ``service`` and returns its response, or None when none came within ``timeout`` seconds.

        One client per service is kept for the probe's life. A reply can be lost right after discovery: the
        server's DDS layer drops a response when it has not yet matched the client's fresh response reader (Fast DDS
        waits ~100 ms for the match, then gives up), so on a loaded machine the first call may never be answered. For
        requests whose repetition is harmless (queries, setting the same value, a refused transition) the request is
        sent again every ``resend_after`` seconds; ``resend_after=None`` sends it once (a state change: decide a lost
        reply by querying the state)."""
        client = self._service_clients.get(service)
        if client is None:
            client = self._service_clients[service] = self.create_client(srv_type, service)
        deadline = time.monotonic() + timeout
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        while (remaining := deadline - time.monotonic()) > 0:
            future = client.call_async(request)
            if self.spin_until(future.done, remaining if resend_after is None else min(resend_after, remaining)):
                return future.result()
            client.remove_pending_request(future)
            if resend_after is None:
                break
        return None

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def wait_for_subscribers(self, timeout: float = 60.0) -> bool:
        """Until the node subscribes to image and camera_info and every recorded output has a publisher."""
        def ready() -> bool:
            return (self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0
                    and all(s.get_publisher_count() > 0 for s in self._subs if s.topic_name != "/diagnostics"))
        return self.spin_until(ready, timeout)

    def latest_diagnostics(self, node: str = "sgdepth") -> dict:
        """The key/values of the newest /diagnostics status of the sgdepth node in this probe's
        namespace (empty dict if none yet)."""
        history = self.diagnostics_history(node)
        return history[-1] if history else {}

    def diagnostics_history(self, node: str = "sgdepth") -> list[dict]:
        """The key/values of every /diagnostics status of the sgdepth node in this probe's namespace, oldest first."""
        prefix = self._status_name or f"{self.get_namespace().rstrip('/')}/{node}: "
        return [{kv.key: kv.value for kv in status.values} for _, msg in self.messages["/diagnostics"]
                for status in msg.status if status.name.startswith(prefix)]


class RigProbes:
    """One :class:`Probe` per camera of a multi-camera node, all added to one executor, so spinning for any camera
    processes every camera's callbacks. ``probes``: camera name → its probe (namespace ``/<node ns>/<camera>``)."""

    def __init__(self, probes: dict):
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor()
        self.probes = dict(probes)
        for probe in self.probes.values():
            self.executor.add_node(probe)

    def __getitem__(self, camera: str) -> Probe:
        return self.probes[camera]

    def spin_until(self, condition, timeout: float) -> bool:
        """As :meth:`Probe.spin_until`, for every camera's callbacks."""
        return next(iter(self.probes.values())).spin_until(condition, timeout)

    def wait_for_subscribers(self, timeout: float = 60.0) -> bool:
        return all(probe.wait_for_subscribers(timeout) for probe in self.probes.values())

    def destroy(self) -> None:
        for probe in self.probes.values():
            probe.destroy_node()
        self.executor.shutdown()
