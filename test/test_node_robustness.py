"""sgdepth_node as a real process: configure-time warm-up, diagnostics level, stamp checks, one count per bad
CameraInfo, and lifecycle requests that are not valid in the current state (which must never end the node)."""
from __future__ import annotations

import signal
import time

import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from std_msgs.msg import Header

from ros_payloads import smooth_rgb
from sgdepth_ros.ros.probe import Probe
from sgdepth_ros.ros.sync import stamp_ns
from test_node import (IMG_H, IMG_W, NET_H, NET_W, camera_info, header, outputs_for, raw_image, send_and_wait,
                       start_node)
from test_node import constant_depth_checkpoint, ros_env  # noqa: F401  (module fixtures, used by name)

NS = "robust"
OK = b"\x00"


@pytest.fixture(scope="module")
def node(ros_env, constant_depth_checkpoint):
    # the rate check is far off here: this module floods the node on purpose and checks the error logic.
    # Reliable, deep input queues: every message sent reaches the node's callbacks, however busy the machine
    # (with the default best-effort depth 1, a message the executor has not taken yet is replaced by the next)
    process = start_node({"model_path": constant_depth_checkpoint, "input_width": NET_W, "input_height": NET_H,
                          "camera_info_wait_sec": 1.0, "warn_input_output_ratio": 1000.0,
                          "input_qos_reliability": "reliable", "input_qos_depth": 100}, ros_env, NS)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def probe(node):
    p = Probe(["depth/relative", "depth/camera_info"], namespace=f"/{NS}", input_depth=100)
    assert p.wait_for_subscribers(60), node.output
    yield p
    p.destroy_node()


def statuses(probe: Probe) -> list:
    """Every /diagnostics status of the node under test, oldest first."""
    prefix = f"/{NS}/sgdepth: "
    return [s for _, msg in probe.messages["/diagnostics"] for s in msg.status if s.name.startswith(prefix)]


def values(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


def errors(diag: dict) -> dict:
    return {k: int(v) for k, v in diag.items() if k.startswith("errors/")}


def diagnostics_when(probe: Probe, condition, timeout: float = 60.0) -> dict:
    assert probe.spin_until(lambda: condition(probe.latest_diagnostics()), timeout), probe.latest_diagnostics()
    return probe.latest_diagnostics()


def serve_one(probe: Probe, with_info: bool = False) -> dict:
    """Send a good frame (with its CameraInfo: and wait for depth/camera_info too) and wait for its outputs."""
    h = header()
    topics = ["depth/relative", "depth/camera_info"] if with_info else ["depth/relative"]
    out = send_and_wait(probe, raw_image(smooth_rgb(IMG_W, IMG_H), "rgb8", h), h,
                        camera_info(h) if with_info else None, topics)
    assert set(out) == set(topics), f"the node did not answer a good frame: {sorted(out)}"
    return out


# ---- cold start ------------------------------------------------------------------------------------------
def test_configure_warms_the_predictor_up(node, probe):
    """One prediction per task set at the network size ran at configure, before any camera frame (the
    design that keeps the first frame from paying the backend's first-call cost; its time is not asserted)."""
    assert f"warm-up (3 prediction(s) at {NET_W}x{NET_H}: depth; depth+segmentation; segmentation)" in node.output
    diag = diagnostics_when(probe, lambda d: "warmup_ms" in d)
    assert float(diag["warmup_ms"]) > 0 and diag["first_predict_ms"] == "nan" and diag["frames_processed"] == "0"
    serve_one(probe)
    diag = diagnostics_when(probe, lambda d: int(d.get("frames_processed", 0)) >= 1)
    assert float(diag["first_predict_ms"]) > 0
    assert float(diag["predict_p50_ms"]) >= float(diag["forward_p50_ms"]) > 0  # predict = pre + forward + post


# ---- diagnostics level -------------------------------------------------------------------------------------
def dropping_reports(probe: Probe) -> list:
    """The reports that saw frames dropped and no new error since the previous report."""
    history = statuses(probe)
    return [b for a, b in zip(history, history[1:])
            if int(values(b)["frames_dropped"]) > int(values(a)["frames_dropped"])
            and errors(values(b)) == errors(values(a))]


def test_frames_dropped_for_newer_ones_keep_diagnostics_ok(probe):
    diagnostics_when(probe, lambda d: "frames_dropped" in d)
    rgb = smooth_rgb(IMG_W, IMG_H)
    deadline = time.monotonic() + 120
    while not dropping_reports(probe):  # bursts until a report saw drops (how many depends on the load)
        assert time.monotonic() < deadline, "no report saw frames dropped"
        for _ in range(15):  # back to back, far faster than the network: frames are replaced by newer ones
            h = header()
            probe.info_pub.publish(camera_info(h))
            probe.image_pub.publish(raw_image(rgb, "rgb8", h))
        serve_one(probe, with_info=True)
        probe.spin_until(lambda: bool(dropping_reports(probe)), 3)
    for status in dropping_reports(probe):
        assert status.level == OK and status.message.startswith("ok"), (status.level, status.message)
    assert probe.spin_until(lambda: statuses(probe)[-1].level == OK, 30), statuses(probe)[-1].message  # and after


# ---- input checks ------------------------------------------------------------------------------------------
def test_a_bad_camera_info_is_counted_once(probe):
    serve_one(probe, with_info=True)
    before = errors(probe.latest_diagnostics())
    h = header()
    out = send_and_wait(probe, raw_image(smooth_rgb(IMG_W, IMG_H), "rgb8", h), h, camera_info(h, k=[0.0] * 9),
                        ["depth/relative"])
    assert out, "depth must still be served without a usable CameraInfo"
    serve_one(probe, with_info=True)  # its depth/camera_info arrived: the earlier frame's would have arrived before
    assert not outputs_for(probe, h, ["depth/camera_info"])
    diag = diagnostics_when(probe, lambda d: errors(d).get("errors/bad_intrinsics", 0) > before.get("errors/bad_intrinsics", 0))
    grown = {k: v - before.get(k, 0) for k, v in errors(diag).items() if v > before.get(k, 0)}
    assert set(grown) == {"errors/bad_intrinsics"}, grown  # not also camera_info_unmatched


def _stamped(sec: int, nanosec: int) -> Header:
    h = Header(frame_id="camera_optical")
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def test_malformed_stamps_are_rejected_and_counted(node, probe):
    before = errors(probe.latest_diagnostics()).get("errors/bad_stamp", 0)
    rgb = smooth_rgb(IMG_W, IMG_H)
    bad = [_stamped(1_700_000_100, 1_500_000_000), _stamped(-5, 0)]
    for h in bad:  # the reliable, deep input queue delivers each one to the callback that counts it
        probe.image_pub.publish(raw_image(rgb, "rgb8", h))
    probe.info_pub.publish(camera_info(_stamped(1_700_000_101, 2_000_000_000)))
    serve_one(probe)
    diag = diagnostics_when(probe, lambda d: errors(d).get("errors/bad_stamp", 0) >= before + 3)
    assert errors(diag)["errors/bad_stamp"] == before + 3
    served = {stamp_ns(m.header) for m in probe.received("depth/relative")}
    assert not served & {stamp_ns(h) for h in bad}
    assert node.returncode is None and "[bad_stamp]" in node.output


def test_a_zero_stamp_is_served_and_counted(probe):
    before = errors(probe.latest_diagnostics()).get("errors/zero_stamp", 0)
    h = _stamped(0, 0)
    out = send_and_wait(probe, raw_image(smooth_rgb(IMG_W, IMG_H), "rgb8", h), h, None, ["depth/relative"])
    assert out["depth/relative"].header.stamp.sec == 0 and out["depth/relative"].header.stamp.nanosec == 0
    diag = diagnostics_when(probe, lambda d: errors(d).get("errors/zero_stamp", 0) > before)
    assert errors(diag).get("errors/out_of_order_stamp", 0) == 0
    serve_one(probe)  # the stamp order continues from the last real stamp


# ---- lifecycle requests ---------------------------------------------------------------------------------------
def _call(probe: Probe, service: str, srv_type, request):
    """A request whose repetition is harmless (a query, a refused transition): resent if its reply is lost."""
    return probe.call_service(srv_type, f"/{NS}/sgdepth/{service}", request, timeout=30)


def test_a_transition_not_valid_in_the_current_state_is_refused_and_the_node_keeps_serving(node, probe):
    for transition_id in (99, Transition.TRANSITION_ACTIVATE, Transition.TRANSITION_CLEANUP):
        request = ChangeState.Request()
        request.transition.id = transition_id
        response = _call(probe, "change_state", ChangeState, request)
        assert response is not None and response.success is False, (transition_id, node.output[-3000:])
        assert node.returncode is None, node.output[-3000:]
    request = ChangeState.Request()
    request.transition.label = "activate"  # by label: refused by rclpy itself
    assert _call(probe, "change_state", ChangeState, request).success is False
    assert _call(probe, "get_state", GetState, GetState.Request()).current_state.label == "active"
    serve_one(probe, with_info=True)
    assert node.returncode is None and "Traceback" not in node.output
    assert "[bad_transition] change_state: transition id 99 is not valid in state 'active'" in node.output
    assert node.stop(signal.SIGTERM) == 0
