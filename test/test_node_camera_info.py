"""sgdepth_node as a real process: a CameraInfo published once, latched (transient local) with stamp 0 BEFORE the
node starts still gives ``points`` and ``depth/camera_info``, projected with P (not K); the fallback can be switched
off at run time; a JPEG whose header claims 30000×30000 is rejected without the node's memory growing."""
from __future__ import annotations


import cv2
import numpy as np
import pytest
import rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage
from std_msgs.msg import Header

from ros_payloads import smooth_rgb
from sgdepth_ros.ros.pointcloud import unpack_points
from sgdepth_ros.ros.probe import Probe
from test_image_codec_safety import jpeg_claiming
from test_node import (IMG_H, IMG_W, MODEL_UNITS, NET_H, NET_W, SCALE, constant_depth_checkpoint,  # noqa: F401
                       error_count, header, outputs_for, ros_env, send_and_wait, start_node, wait_for_error)

NS = "latched"
OUTPUTS = ["depth", "depth/camera_info", "points"]
# K (the unrectified camera) deliberately differs from P (the rectified image's camera): geometry must use P
CAM_K = [150.0, 0.0, 70.0, 0.0, 140.0, 35.0, 0.0, 0.0, 1.0]
CAM_P = [100.0, 0.0, 60.0, 0.0, 0.0, 90.0, 30.0, 0.0, 0.0, 0.0, 1.0, 0.0]


@pytest.fixture(scope="module")
def latched_camera(ros_env):
    """A driver-like node that publishes one CameraInfo, stamp 0, transient local, before sgdepth_node exists."""
    node = rclpy.create_node("static_camera", namespace=f"/{NS}")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publisher = node.create_publisher(CameraInfo, "camera_info", qos)
    publisher.publish(CameraInfo(header=Header(frame_id="camera_optical"), width=IMG_W, height=IMG_H, k=CAM_K,
                                 p=CAM_P, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], distortion_model="plumb_bob",
                                 d=[-0.3, 0.1, 0.0, 0.0, 0.0]))
    yield node
    node.destroy_node()


@pytest.fixture(scope="module")
def node(latched_camera, ros_env, constant_depth_checkpoint):
    process = start_node({"model_path": constant_depth_checkpoint, "input_width": NET_W, "input_height": NET_H,
                          "input_transport": "compressed", "scale_mode": "fixed", "scale_factor": SCALE,
                          "points_decimation": 2}, ros_env, NS)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def probe(node):
    p = Probe(OUTPUTS, namespace=f"/{NS}", compressed=True)
    assert p.wait_for_subscribers(60), node.output
    yield p
    p.destroy_node()


def jpeg_frame(h: Header) -> CompressedImage:
    msg = CompressedImage(header=h, format="rgb8; jpeg compressed bgr8")
    msg.data = cv2.imencode(".jpg", cv2.cvtColor(smooth_rgb(IMG_W, IMG_H), cv2.COLOR_RGB2BGR))[1].tobytes()
    return msg


def set_parameter(client_node, name: str, value: bool):
    response = client_node.call_service(SetParameters, f"/{NS}/sgdepth/set_parameters", SetParameters.Request(
        parameters=[Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value))]))
    assert response is not None
    return response.results[0]


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024


def errors(probe: Probe) -> dict:
    return {k: int(v) for k, v in probe.latest_diagnostics().items() if k.startswith("errors/")}


def test_latched_zero_stamp_camera_info_gives_points_and_depth_info_projected_with_p(probe, node):
    for _ in range(2):
        h = header()
        out = send_and_wait(probe, jpeg_frame(h), h, None, OUTPUTS)  # no CameraInfo with the image's stamp
        assert set(out) == set(OUTPUTS), f"missing {set(OUTPUTS) - set(out)}\n{node.output[-3000:]}"
    info = out["depth/camera_info"]
    assert info.header.stamp == h.stamp and (info.width, info.height) == (NET_W, NET_H)
    sx, sy = NET_W / IMG_W, NET_H / IMG_H
    np.testing.assert_allclose(info.p, np.array(CAM_P) * [sx, 1, sx, sx, 1, sy, sy, sy, 1, 1, 1, 1])
    np.testing.assert_allclose(info.k, np.array(CAM_K) * [sx, 1, sx, 0, sy, sy, 1, 1, 1])
    points = unpack_points(bytes(out["points"].data))
    assert out["points"].is_dense and len(points) == (NET_W // 2) * (NET_H // 2)
    np.testing.assert_allclose(points["z"], MODEL_UNITS * SCALE, rtol=1e-3)
    u = points["x"] / points["z"] * info.p[0] + info.p[2]  # P: every point on a pixel centre of the decimated grid
    v = points["y"] / points["z"] * info.p[5] + info.p[6]
    np.testing.assert_allclose(u, np.round(u), atol=1e-2)
    np.testing.assert_allclose(v, np.round(v), atol=1e-2)
    assert np.round(u).min() == 0 and np.round(u).max() == NET_W - 2
    u_k = points["x"] / points["z"] * info.k[0] + info.k[2]  # K would put them elsewhere
    assert np.abs(u_k - u).max() > 10
    assert node.output.count("non-zero distortion") == 1  # warned once: inputs are expected rectified
    assert not any(k in errors(probe) for k in ("errors/camera_info_unmatched", "errors/camera_info_size"))


def test_fallback_can_be_switched_off_at_run_time(probe):
    assert set_parameter(probe, "camera_info_fallback_latest", False).successful
    try:
        before = error_count(probe, "camera_info_unmatched")
        h_off = header()
        assert "depth" in send_and_wait(probe, jpeg_frame(h_off), h_off, None, ["depth"])
        wait_for_error(probe, "camera_info_unmatched", before)
    finally:
        assert set_parameter(probe, "camera_info_fallback_latest", True).successful
    h = header()
    assert set(send_and_wait(probe, jpeg_frame(h), h, None, OUTPUTS)) == set(OUTPUTS)
    # every output of a later frame has arrived, so those of the earlier one would have arrived before them
    assert not outputs_for(probe, h_off, ["depth/camera_info", "points"])


def test_a_jpeg_claiming_30000x30000_costs_the_node_no_memory(probe, node):
    h = header()
    assert send_and_wait(probe, jpeg_frame(h), h, None, OUTPUTS)  # every output path has run once
    before = peak_rss_mb(node.process.pid)
    bomb = CompressedImage(header=header(), format="jpeg")
    bomb.data = jpeg_claiming(30000, 30000)
    assert len(bomb.data) < 1000
    count = errors(probe).get("errors/bad_size", 0)

    def send_bomb():  # a fresh stamp each time (a repeated one would be counted as duplicate_stamp)
        bomb.header = header()
        probe.image_pub.publish(bomb)
    send_bomb()
    wait_for_error(probe, "bad_size", count, resend=send_bomb)
    h = header()
    assert set(send_and_wait(probe, jpeg_frame(h), h, None, OUTPUTS)) == set(OUTPUTS)  # still serving
    grown = peak_rss_mb(node.process.pid) - before
    assert grown < 200, f"the node's peak RSS grew by {grown:.0f} MB (decoding would allocate 2.7 GB)"
    assert node.returncode is None and "exceeds max_image_pixels" in node.output
