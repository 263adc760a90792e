"""sgdepth_node as a real process over real DDS on loopback (random ROS_DOMAIN_ID per run, namespace per node).

The main node runs a checkpoint whose depth head is constant (10 model units, × scale 2 = 20 m),
so depth values and point-cloud geometry can be checked exactly; overlay_alpha 0 makes
semantic/overlay the network-size input image, which checks every encoding's decoding end to end.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from itertools import count

import cv2
import numpy as np
import pytest
import torch

from conftest import randomized_model
from ros_payloads import ALL_ENCODINGS, encode, smooth_rgb
from sgdepth_ros.model import save_checkpoint
from sgdepth_ros.preprocess import resize_rgb
from sgdepth_ros.ros.launcher import NodeProcess, ros_environment
from sgdepth_ros.ros.sync import stamp_ns
from sgdepth_ros.ros.pointcloud import unpack_points

import rclpy  # part of the test environment (requirements-ros.txt): never skipped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from sgdepth_ros.ros.probe import Probe

NET_W, NET_H = 320, 96  # small network input keeps CPU inference ~70 ms
IMG_W, IMG_H = 128, 64
MODEL_UNITS, SCALE = 10.0, 2.0
K = [100.0, 0.0, 60.0, 0.0, 90.0, 30.0, 0.0, 0.0, 1.0]
OUTPUTS = ["depth", "depth/camera_info", "depth/color", "semantic", "semantic/color", "semantic/overlay", "points"]
_stamps = count(1)


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ros_env():
    env = ros_environment()
    saved = dict(os.environ)
    os.environ.update(env)  # the probe in this process joins the same isolated graph
    rclpy.init(domain_id=int(env["ROS_DOMAIN_ID"]))
    yield env
    rclpy.try_shutdown()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def constant_depth_checkpoint(tmp_path_factory) -> str:
    """A checkpoint whose full-resolution disparity is constant: depth = 10 model units everywhere."""
    model = randomized_model(seed=1)
    disp = (1 / MODEL_UNITS - 1 / 100.0) / (1 / 0.1 - 1 / 100.0)
    with torch.no_grad():
        head = model.depth.multires.convs[0]
        head.weight.zero_()
        head.bias.fill_(math.log(disp / (1 - disp)))
    return str(save_checkpoint(model, tmp_path_factory.mktemp("const") / "const.safetensors",
                               {"provenance": {"source": "test: constant depth head"}}))


def start_node(params: dict, env: dict, namespace: str, wait_for: str = "active:") -> NodeProcess:
    node = NodeProcess({"log_period_sec": 0.0, "diagnostics_period_sec": 0.5, **params}, env,
                       extra_args=("-r", f"__ns:=/{namespace}")).start()
    if wait_for:
        node.wait_for_output(wait_for, timeout=180)
    return node


@pytest.fixture(scope="module")
def main_node(ros_env, constant_depth_checkpoint):
    # camera_info_wait_sec at its maximum: a CameraInfo sent with its image pairs with it even when a busy machine
    # delays its callback (a frame whose CameraInfo never comes waits that long only while stamps were matching)
    node = start_node({"model_path": constant_depth_checkpoint, "input_width": NET_W, "input_height": NET_H,
                       "scale_mode": "fixed", "scale_factor": SCALE, "overlay_alpha": 0.0,
                       "points_decimation": 2, "backend": "openvino", "camera_info_wait_sec": 1.0}, ros_env, "main")
    yield node
    node.stop()


@pytest.fixture(scope="module")
def probe(main_node):
    p = Probe(OUTPUTS, namespace="/main")
    assert p.wait_for_subscribers(60), main_node.output
    yield p
    p.destroy_node()


# ---- helpers ------------------------------------------------------------------------------------
def header(frame_id: str = "camera_optical") -> Header:
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = 1_700_000_000 + next(_stamps), 500
    return h


def raw_image(rgb: np.ndarray, encoding: str, h: Header, padding: int = 3) -> Image:
    step, data, _ = encode(rgb, encoding, padding)
    msg = Image(header=h, height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0, step=step)
    msg.data = data
    return msg


def camera_info(h: Header, width: int = IMG_W, height: int = IMG_H, k=K) -> CameraInfo:
    p = [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0]
    return CameraInfo(header=h, width=width, height=height, k=list(k), p=p, distortion_model="plumb_bob",
                      d=[0.0] * 5, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])


def outputs_for(probe: Probe, h: Header, topics) -> dict:
    found = {}
    for topic in topics:
        for msg in probe.received(topic):
            if msg.header.stamp == h.stamp:
                found[topic] = msg
    return found


def send_and_wait(probe: Probe, image, h: Header, info: CameraInfo | None = None, topics=OUTPUTS,
                  timeout: float = 60.0) -> dict:
    """Publish ``info`` (if any) and ``image``, both stamped like ``h``; wait until every topic in ``topics`` has an
    output with that stamp (→ {topic: message}, the ones that came). Unanswered after 5 s, the frame is sent again
    under a new stamp, written into ``h`` and both headers: a message sent while discovery is still settling can be
    lost, or reach a node that does not see this subscriber yet and skips the frame as idle, and the node rejects
    a repeated stamp as a duplicate. A zero stamp is sent again as it is (never a duplicate)."""
    deadline = time.monotonic() + timeout
    first = True
    while time.monotonic() < deadline:
        if not first and stamp_ns(h) != 0:
            h.stamp = header().stamp
            image.header.stamp = h.stamp
            if info is not None:
                info.header.stamp = h.stamp
        first = False
        if info is not None:
            probe.info_pub.publish(info)
        probe.image_pub.publish(image)
        if probe.spin_until(lambda: len(outputs_for(probe, h, topics)) == len(topics), min(5.0, deadline - time.monotonic())):
            break
    return outputs_for(probe, h, topics)


def image_array(msg: Image) -> np.ndarray:
    dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
    channels = 3 if msg.encoding == "rgb8" else 1
    arr = np.frombuffer(bytes(msg.data), dtype).reshape(msg.height, -1)[:, : msg.width * channels]
    return arr.reshape(msg.height, msg.width, channels).squeeze(-1) if channels == 1 else arr.reshape(msg.height, msg.width, 3)


def diagnostics_after(probe: Probe, condition, timeout: float = 30.0) -> dict:
    probe.spin_until(lambda: condition(probe.latest_diagnostics()), timeout)
    return probe.latest_diagnostics()


def error_count(probe: Probe, kind: str) -> int:
    """The node's ``errors/<kind>`` count in its newest /diagnostics report (0 if none)."""
    return int(probe.latest_diagnostics().get(f"errors/{kind}", 0))


def wait_for_error(probe: Probe, kind: str, above: int, resend=None, timeout: float = 60.0) -> int:
    """Spin until the node reports more than ``above`` errors of ``kind``; returns the count. ``resend()`` is called
    every 5 s meanwhile (for a message the transport may have lost); fails after ``timeout`` s. A condition, not a
    sleep: the next message is only sent once the node has provably handled this one."""
    deadline = time.monotonic() + timeout
    while not probe.spin_until(lambda: error_count(probe, kind) > above, max(0.0, min(5.0, deadline - time.monotonic()))):
        assert time.monotonic() < deadline, f"errors/{kind} stayed at {error_count(probe, kind)} (expected > {above})"
        if resend is not None:
            resend()
    return error_count(probe, kind)


REJECTED_AT_INPUT = ("bad_stamp", "duplicate_stamp", "out_of_order_stamp")  # frames skipped before the hand-off


def frame_counts(diag: dict) -> dict:
    """Frame counters of a /diagnostics report; ``rejected``: frames skipped for their stamp before the hand-off."""
    counts = {k: int(diag.get(f"frames_{k}", 0)) for k in ("received", "processed", "dropped", "idle")}
    counts["rejected"] = sum(int(diag.get(f"errors/{kind}", 0)) for kind in REJECTED_AT_INPUT)
    return counts


def all_frames_accounted(diag: dict) -> bool:
    """Every frame the node received was processed, dropped for a newer one, idle (no subscriber) or rejected for
    its stamp: true whenever the node has no frame in hand (no decode errors in between)."""
    c = frame_counts(diag)
    return bool(diag) and c["received"] == c["processed"] + c["dropped"] + c["idle"] + c["rejected"]


def set_parameter(probe, name: str, value):
    """Calls /main/sgdepth/set_parameters; returns the SetParametersResult."""
    kinds = {bool: (ParameterType.PARAMETER_BOOL, "bool_value"), float: (ParameterType.PARAMETER_DOUBLE, "double_value"),
             int: (ParameterType.PARAMETER_INTEGER, "integer_value"), str: (ParameterType.PARAMETER_STRING, "string_value")}
    ptype, field = kinds[type(value)]
    pv = ParameterValue(type=ptype)
    setattr(pv, field, value)
    response = probe.call_service(SetParameters, "/main/sgdepth/set_parameters",
                                  SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
    assert response is not None
    return response.results[0]


# ---- outputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
def test_every_encoding_gives_every_output(probe, encoding):
    rgb = smooth_rgb(IMG_W, IMG_H)
    h = header(f"cam_{encoding}")
    out = send_and_wait(probe, raw_image(rgb, encoding, h), h, camera_info(h))
    assert set(out) == set(OUTPUTS), f"missing {set(OUTPUTS) - set(out)}"
    for msg in out.values():
        assert msg.header.frame_id == f"cam_{encoding}" and msg.header.stamp == h.stamp
    depth = out["depth"]
    assert (depth.encoding, depth.width, depth.height) == ("32FC1", NET_W, NET_H)
    np.testing.assert_allclose(image_array(depth), MODEL_UNITS * SCALE, rtol=1e-3)  # metres, REP 118
    for topic in ("depth/color", "semantic/color", "semantic/overlay"):
        assert (out[topic].encoding, out[topic].width, out[topic].height) == ("rgb8", NET_W, NET_H)
    labels = image_array(out["semantic"])
    assert out["semantic"].encoding == "mono8" and labels.shape == (NET_H, NET_W) and labels.max() <= 18
    # overlay_alpha 0: the overlay is exactly the decoded input resized to the network size
    _, _, expected = encode(rgb, encoding)
    error = np.abs(image_array(out["semantic/overlay"]).astype(np.int16) - resize_rgb(expected, (NET_W, NET_H))).mean()
    assert error < (4.0 if ("bayer" in encoding or "yuv" in encoding or encoding == "uyvy") else 0.01), error


def test_camera_info_and_point_cloud_geometry(probe):
    h = header()
    out = send_and_wait(probe, raw_image(smooth_rgb(IMG_W, IMG_H), "rgb8", h), h, camera_info(h))
    info = out["depth/camera_info"]
    sx, sy = NET_W / IMG_W, NET_H / IMG_H
    assert (info.width, info.height) == (NET_W, NET_H)
    np.testing.assert_allclose(info.k, [100 * sx, 0, 60 * sx, 0, 90 * sy, 30 * sy, 0, 0, 1])
    np.testing.assert_allclose(info.p, [100 * sx, 0, 60 * sx, 0, 0, 90 * sy, 30 * sy, 0, 0, 0, 1, 0])
    cloud = out["points"]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "label"] and cloud.point_step == 20
    points = unpack_points(bytes(cloud.data))
    assert cloud.width == len(points) == (NET_W // 2) * (NET_H // 2)
    z = points["z"]
    np.testing.assert_allclose(z, MODEL_UNITS * SCALE, rtol=1e-3)
    u = points["x"] / z * info.k[0] + info.k[2]
    v = points["y"] / z * info.k[4] + info.k[5]
    np.testing.assert_allclose(u, np.round(u), atol=1e-2)  # every point sits on a pixel centre …
    assert set(np.round(u).astype(int) % 2) == {0} and set(np.round(v).astype(int) % 2) == {0}  # … of the decimated grid
    assert np.round(u).min() == 0 and np.round(u).max() == NET_W - 2
    assert points["label"].max() <= 18


def test_label_metadata_is_latched(probe):
    assert probe.spin_until(lambda: probe.received("semantic/labels"), 30)
    meta = json.loads(probe.received("semantic/labels")[-1].data)
    assert meta["format"] == "sgdepth_ros/labels/v1" and meta["ignore_id"] == 255
    assert [c["id"] for c in meta["classes"]] == list(range(19))
    assert meta["classes"][13]["name"] == "car" and meta["classes"][13]["color"] == [0, 0, 142]


# ---- bad input ------------------------------------------------------------------------------------
def _bad_images():
    rgb = smooth_rgb(IMG_W, IMG_H)
    good = raw_image(rgb, "rgb8", Header(), padding=0)

    def variant(**fields):
        msg = Image(header=Header(), height=good.height, width=good.width, encoding="rgb8", step=good.step)
        msg.data = bytes(good.data)
        for key, value in fields.items():
            setattr(msg, key, value)
        return msg
    return {
        "empty_data": variant(data=b""),
        "short_data": variant(data=bytes(good.data)[:-10]),
        "bad_step": variant(step=IMG_W * 3 - 1),
        "bad_size": variant(width=0),
        "bad_size/huge": variant(width=100_000, height=100_000, step=300_000),
        "unknown_encoding": variant(encoding="64FC3"),
    }


def test_bad_images_are_counted_and_the_next_frame_is_served(probe, main_node):
    rgb = smooth_rgb(IMG_W, IMG_H)
    counted = {}
    for name, bad in _bad_images().items():
        kind = name.split("/")[0]

        def send_bad():  # a fresh stamp each time: a repeated one would be counted as duplicate_stamp instead
            bad.header = header()
            probe.image_pub.publish(bad)
        send_bad()
        # the good frame only once this one is counted: sent earlier, it could replace it before the worker takes it
        counted[name] = wait_for_error(probe, kind, error_count(probe, kind), resend=send_bad)
        h = header()
        assert send_and_wait(probe, raw_image(rgb, "rgb8", h), h, camera_info(h), ["depth"]), f"no answer after {name}"
    assert counted["bad_size/huge"] >= 2  # both bad sizes counted
    assert probe.spin_until(lambda: "[short_data]" in main_node.output, 10), main_node.output[-3000:]
    assert main_node.returncode is None and "Traceback" not in main_node.output


def test_bad_camera_info_and_stamps_are_counted(probe, main_node):
    rgb = smooth_rgb(IMG_W, IMG_H)
    unpaired = []  # frames whose CameraInfo is unusable: depth, but no depth/camera_info or points
    for k in ([0.0] * 9, [float("nan")] + K[1:]):
        h = header()
        before = error_count(probe, "bad_intrinsics")
        out = send_and_wait(probe, raw_image(rgb, "rgb8", h), h, camera_info(h, k=k), ["depth"])
        assert "depth" in out  # depth still served, without camera_info/points
        wait_for_error(probe, "bad_intrinsics", before, resend=lambda: probe.info_pub.publish(camera_info(h, k=k)))
        unpaired.append(h)
    h = header()
    before = error_count(probe, "camera_info_size")
    out = send_and_wait(probe, raw_image(rgb, "rgb8", h), h, camera_info(h, width=IMG_W // 2), ["depth"])
    assert "depth" in out
    wait_for_error(probe, "camera_info_size", before)  # counted while the frame is processed, before its depth
    unpaired.append(h)
    h_dup = header()
    send_and_wait(probe, raw_image(rgb, "rgb8", h_dup), h_dup, camera_info(h_dup), ["depth"])
    # each bad stamp is sent once the previous one is counted (the input queue holds one message: keep last 1)
    duplicate = raw_image(rgb, "rgb8", h_dup)
    probe.image_pub.publish(duplicate)
    wait_for_error(probe, "duplicate_stamp", error_count(probe, "duplicate_stamp"),
                   resend=lambda: probe.image_pub.publish(duplicate))
    older = Header(frame_id="camera_optical")
    older.stamp.sec, older.stamp.nanosec = h_dup.stamp.sec, 400  # 100 ns older
    older_frame = raw_image(rgb, "rgb8", older)
    probe.image_pub.publish(older_frame)
    wait_for_error(probe, "out_of_order_stamp", error_count(probe, "out_of_order_stamp"),
                   resend=lambda: probe.image_pub.publish(older_frame))
    h = header()
    assert send_and_wait(probe, raw_image(rgb, "rgb8", h), h, camera_info(h))  # everything again
    # a later frame's every output has arrived, so any output of the unpaired frames would have arrived before it
    for h in unpaired:
        assert not outputs_for(probe, h, ["depth/camera_info", "points"])
    assert not any(outputs_for(probe, older, ["depth"]))  # rejected frames are not served
    assert main_node.returncode is None


# ---- parameters ----------------------------------------------------------------------------------
def test_parameters_rejected_with_their_range_and_applied_at_run_time(probe):
    result = set_parameter(probe, "overlay_alpha", 1.5)
    assert not result.successful and "Min: 0.0" in result.reason and "Max: 1.0" in result.reason
    result = set_parameter(probe, "depth_colormap", "rainbow")
    assert not result.successful and "one of" in result.reason and "turbo" in result.reason
    result = set_parameter(probe, "model_path", "/elsewhere.pth")
    assert not result.successful and "read-only" in result.reason
    result = set_parameter(probe, "depth_color_min", 80.0)
    assert result.successful
    result = set_parameter(probe, "depth_color_max", 10.0)
    assert not result.successful and "below" in result.reason
    assert set_parameter(probe, "depth_color_min", 0.0).successful
    assert set_parameter(probe, "publish_points", False).successful
    assert set_parameter(probe, "overlay_alpha", 1.0).successful
    rgb = smooth_rgb(IMG_W, IMG_H)
    h = header()
    out = send_and_wait(probe, raw_image(rgb, "rgb8", h), h, camera_info(h), ["semantic/overlay", "semantic/color"])
    # alpha 1: the overlay is the label colours (except unknown pixels, none here)
    np.testing.assert_array_equal(image_array(out["semantic/overlay"]), image_array(out["semantic/color"]))
    assert set_parameter(probe, "publish_points", True).successful
    assert set_parameter(probe, "overlay_alpha", 0.0).successful
    h_on = header()
    assert send_and_wait(probe, raw_image(rgb, "rgb8", h_on), h_on, camera_info(h_on), ["points"])  # on again …
    assert not outputs_for(probe, h, ["points"])  # … so the earlier frame's points would have arrived: switched off


# ---- overload: newest frame wins, every frame accounted for ---------------------------------------
def test_overload_every_frame_is_delivered_or_dropped_newest_first(ros_env, constant_depth_checkpoint):
    """Frames sent faster than the network runs. What the newest-frame hand-off guarantees at any machine load:
    every frame sent is either processed, its outputs delivered, or dropped for a newer one and counted (sent =
    delivered + dropped, with reliable deep input and output queues so the transport loses none); frames are served
    in stamp order, each at most once; the newest frame is always served; delivered depth is exact. How many are
    dropped and the latency depend on the load: ``sgdepth-ros bench-node`` measures those (docs/benchmarks.md)."""
    node = start_node({"model_path": constant_depth_checkpoint, "input_width": NET_W, "input_height": NET_H,
                       "scale_mode": "fixed", "scale_factor": SCALE, "input_qos_reliability": "reliable",
                       "input_qos_depth": 100, "output_qos_depth": 100}, ros_env, "overload")
    client = Probe(["depth"], namespace="/overload", input_depth=100)
    try:
        assert client.wait_for_subscribers(60), node.output
        rgb = smooth_rgb(IMG_W, IMG_H)
        h = header()
        assert send_and_wait(client, raw_image(rgb, "rgb8", h), h, None, ["depth"]), \
            f"{client.latest_diagnostics()}\n{node.output[-3000:]}"  # both ends matched, warm
        before = diagnostics_after(client, lambda d: int(d.get("frames_processed", 0)) >= 1 and all_frames_accounted(d))
        assert all_frames_accounted(before), before
        sent = [header() for _ in range(45)]
        for h in sent:  # ~50 Hz (the node serves ~10-15 Hz on an idle CPU); the pace changes only how many drop
            client.image_pub.publish(raw_image(rgb, "rgb8", h))
            client.spin_for(0.02)
        assert client.spin_until(lambda: outputs_for(client, sent[-1], ["depth"]), 120), \
            f"the newest frame was not served\n{node.output[-3000:]}"

        def delta(d: dict) -> dict:
            now, then = frame_counts(d), frame_counts(before)
            return {k: now[k] - then[k] for k in now}
        settled = diagnostics_after(client, lambda d: all_frames_accounted(d)
                                    and delta(d)["received"] - delta(d)["rejected"] == len(sent), 60)
        counts = delta(settled)
        assert counts["received"] - counts["rejected"] == len(sent), counts  # the transport lost none
        assert all_frames_accounted(settled), frame_counts(settled)
        wanted = {stamp_ns(h) for h in sent}
        delivered = [m for m in client.received("depth") if stamp_ns(m.header) in wanted]  # in arrival order
        stamps = [stamp_ns(m.header) for m in delivered]
        assert stamps == sorted(set(stamps)), "served out of stamp order, or a frame twice"
        assert stamps[-1] == stamp_ns(sent[-1])
        assert counts["idle"] == 0 and counts["processed"] == len(delivered) >= 1, (counts, len(delivered))
        assert len(delivered) + counts["dropped"] == len(sent), (counts, len(delivered))  # sent = delivered + dropped
        for msg in delivered:  # exact on every delivered frame
            np.testing.assert_allclose(image_array(msg), MODEL_UNITS * SCALE, rtol=1e-3)
        print(f"overload: {len(sent)} sent, {len(delivered)} delivered, {counts['dropped']} dropped")  # pytest -s
    finally:
        client.destroy_node()
        assert node.stop(signal.SIGTERM) == 0, node.output[-4000:]


def test_idle_when_nobody_listens(ros_env, constant_depth_checkpoint):
    """With no subscriber on any output the node receives frames but never runs the network."""
    node = start_node({"model_path": constant_depth_checkpoint, "input_width": NET_W, "input_height": NET_H,
                       "log_period_sec": 0.5}, ros_env, "idle")
    feeder = Probe([], name="feeder", namespace="/idle")
    try:
        assert feeder.spin_until(lambda: feeder.image_pub.get_subscription_count() > 0, 60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the node has seen a few (early ones may precede matching)
            feeder.image_pub.publish(raw_image(smooth_rgb(IMG_W, IMG_H), "rgb8", header()))
            if feeder.spin_until(lambda: int(feeder.latest_diagnostics().get("frames_idle", 0)) >= 3, 0.2):
                break
        diag = feeder.latest_diagnostics()
        assert int(diag["frames_idle"]) >= 3 and diag["frames_processed"] == "0", diag
        assert feeder.spin_until(lambda: "(no subscriber)" in node.output, 30)  # the periodic status line says so
        assert "no frame processed yet" in node.output
    finally:
        feeder.destroy_node()
        assert node.stop(signal.SIGTERM) == 0, node.output[-4000:]


def test_sigint_exits_with_code_zero(main_node):
    assert main_node.returncode is None
    assert main_node.stop(signal.SIGINT) == 0
    assert "Traceback" not in main_node.output


# ---- compressed input at input resolution, relative depth ------------------------------------------
def test_compressed_input_relative_depth_at_input_resolution(ros_env, constant_depth_checkpoint):
    node = start_node({"model_path": constant_depth_checkpoint, "input_width": NET_W, "input_height": NET_H,
                       "input_transport": "compressed", "output_resolution": "input"}, ros_env, "jpeg")
    client = Probe(["depth/relative", "semantic", "points/relative", "depth/camera_info"], namespace="/jpeg",
                   compressed=True)
    try:
        assert client.wait_for_subscribers(60), node.output
        rgb = smooth_rgb(IMG_W, IMG_H)
        for ext in (".jpg", ".png"):
            h = header()
            payload = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
            msg = CompressedImage(header=h, format=ext[1:])
            msg.data = payload
            out = send_and_wait(client, msg, h, camera_info(h),
                                ["depth/relative", "semantic", "points/relative", "depth/camera_info"])
            depth = out["depth/relative"]
            assert (depth.width, depth.height) == (IMG_W, IMG_H)  # input resolution
            np.testing.assert_allclose(image_array(depth), MODEL_UNITS, rtol=1e-3)  # model units, unscaled
            np.testing.assert_allclose(out["depth/camera_info"].k, K)  # same size: K unchanged
        bad = CompressedImage(header=header(), format="jpeg")
        bad.data = b"\xff\xd8\xff\xe0 not a jpeg at all" * 4
        client.image_pub.publish(bad)
        # the good frame only once the bad one is counted (sent earlier, it could replace it before the worker takes it)
        assert wait_for_error(client, "corrupt_compressed", 0) == 1
        h = header()
        good = CompressedImage(header=h, format="png")
        good.data = cv2.imencode(".png", rgb)[1].tobytes()
        assert send_and_wait(client, good, h, None, ["semantic"])
        diag = diagnostics_after(client, lambda d: int(d.get("frames_processed", 0)) >= 3)  # after the good frame
        assert int(diag["errors/corrupt_compressed"]) == 1, diag  # counted once
    finally:
        client.destroy_node()
        assert node.stop(signal.SIGTERM) == 0, node.output[-4000:]


# ---- lifecycle -------------------------------------------------------------------------------------
def test_lifecycle_transitions(ros_env, constant_depth_checkpoint):
    node = start_node({"model_path": constant_depth_checkpoint, "input_width": NET_W, "input_height": NET_H,
                       "autostart": False}, ros_env, "managed", wait_for="")
    client = Probe(["semantic"], namespace="/managed")

    def state() -> str:
        response = client.call_service(GetState, "/managed/sgdepth/get_state", GetState.Request())
        assert response is not None, node.output[-3000:]
        return response.current_state.label

    def change(transition: int, goal: str) -> bool:
        """Requests ``transition`` once; true when it was accepted and the node is then in state ``goal`` (a reply
        lost in discovery is decided by the state alone)."""
        request = ChangeState.Request()
        request.transition.id = transition
        response = client.call_service(ChangeState, "/managed/sgdepth/change_state", request, resend_after=None)
        return (response is None or response.success) and state() == goal

    try:
        assert state() == "unconfigured"
        assert client.image_pub.get_subscription_count() == 0
        assert change(Transition.TRANSITION_CONFIGURE, "inactive")
        assert client.image_pub.get_subscription_count() == 0  # topics only when active
        assert change(Transition.TRANSITION_ACTIVATE, "active")
        assert client.wait_for_subscribers(30)
        h = header()
        assert send_and_wait(client, raw_image(smooth_rgb(IMG_W, IMG_H), "rgb8", h), h, None, ["semantic"])
        assert change(Transition.TRANSITION_DEACTIVATE, "inactive")
        assert client.spin_until(lambda: client.image_pub.get_subscription_count() == 0, 30)
        assert change(Transition.TRANSITION_ACTIVATE, "active")  # and back
        assert change(Transition.TRANSITION_DEACTIVATE, "inactive")
        assert change(Transition.TRANSITION_CLEANUP, "unconfigured")
        assert change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN, "finalized")
    finally:
        client.destroy_node()
        assert node.stop(signal.SIGTERM) == 0, node.output[-4000:]
    assert "Traceback" not in node.output


# ---- start-up failures -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing", "corrupt", "unset"])
def test_bad_checkpoint_fails_configure_clearly(ros_env, tmp_path, case):
    path = {"missing": str(tmp_path / "nope.safetensors"), "unset": ""}.get(case)
    if case == "corrupt":
        path = str(tmp_path / "broken.safetensors")
        with open(path, "wb") as f:
            f.write(os.urandom(4096))
    node = start_node({"model_path": path}, ros_env, f"bad_{case}", wait_for="")
    assert node.wait(120) == 1
    out = node.output
    assert "configure failed" in out and "Traceback" not in out
    assert (path or "model_path") in out


def test_bad_start_up_parameter_names_the_valid_range(ros_env, constant_depth_checkpoint):
    node = start_node({"model_path": constant_depth_checkpoint, "scale_mode": "metric", "overlay_alpha": 2.0},
                      ros_env, "badparam", wait_for="")
    assert node.wait(120) == 2
    assert "scale_mode='metric' is not valid: must be one of relative, fixed" in node.output
    assert "overlay_alpha" in node.output and "Traceback" not in node.output
