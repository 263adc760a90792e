"""One sgdepth_node serving three cameras (issue 15), as a real process over real DDS on loopback.

The cameras differ in size and encoding (rear compressed) and in their scale (left has its own scale_factor); every
camera is answered on its own topics with its own stamps, frame_ids and CameraInfo, at its own size. A camera fed
garbage, or a silent one, never costs the others their frames; under overload every camera's newest frame is served
and every frame is delivered or counted as dropped on its own camera (fairness by design, not by timing).
"""
from __future__ import annotations

import signal

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from ros_payloads import smooth_rgb
from sgdepth_ros.ros.probe import Probe, RigProbes
from sgdepth_ros.ros.sync import stamp_ns
from test_node import (MODEL_UNITS, NET_H, NET_W, SCALE, all_frames_accounted, camera_info,  # noqa: F401
                       constant_depth_checkpoint, diagnostics_after, frame_counts, header, image_array, outputs_for,
                       raw_image, ros_env, send_and_wait, start_node)

LEFT_SCALE = 3.0
CAMERAS = {  # name → (width, height), encoding ("jpeg": CompressedImage), K, metres per model unit
    "front": ((128, 64), "rgb8", [100.0, 0.0, 60.0, 0.0, 90.0, 30.0, 0.0, 0.0, 1.0], SCALE),
    "left": ((96, 48), "bgr8", [70.0, 0.0, 47.0, 0.0, 70.0, 23.0, 0.0, 0.0, 1.0], LEFT_SCALE),
    "rear": ((160, 80), "jpeg", [120.0, 0.0, 80.0, 0.0, 120.0, 40.0, 0.0, 0.0, 1.0], SCALE),
}
OUTPUTS = ["depth", "depth/camera_info", "semantic"]


def rig_params(checkpoint: str, **extra) -> dict:
    return {"model_path": checkpoint, "input_width": NET_W, "input_height": NET_H, "cameras": list(CAMERAS),
            "scale_mode": "fixed", "scale_factor": SCALE, "left": {"scale_factor": LEFT_SCALE},
            "rear": {"input_transport": "compressed"}, "output_resolution": "input", "backend": "openvino",
            "camera_info_wait_sec": 1.0, **extra}


def image_for(camera: str, h):
    (width, height), encoding, _, _ = CAMERAS[camera]
    rgb = smooth_rgb(width, height)
    if encoding == "jpeg":
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        return CompressedImage(header=h, format="jpeg", data=data.tobytes())
    return raw_image(rgb, encoding, h)


def info_for(camera: str, h):
    (width, height), _, k, _ = CAMERAS[camera]
    return camera_info(h, width, height, k)


def Rig(namespace: str, outputs=OUTPUTS, **probe_args) -> RigProbes:
    """One probe per camera (namespace /<rig>/<camera>: its inputs and outputs), all spun by one executor."""
    return RigProbes({camera: Probe(outputs, name=f"probe_{camera}", namespace=f"/{namespace}/{camera}",
                                    compressed=encoding == "jpeg",
                                    status=f"/{namespace}/sgdepth/{camera}: sgdepth inference", **probe_args)
                      for camera, (_, encoding, _, _) in CAMERAS.items()})


@pytest.fixture(scope="module")
def rig_node(ros_env, constant_depth_checkpoint):
    node = start_node(rig_params(constant_depth_checkpoint), ros_env, "rig")
    yield node
    node.stop()


@pytest.fixture(scope="module")
def rig(rig_node):
    probes = Rig("rig")
    assert probes.wait_for_subscribers(60), rig_node.output
    yield probes
    probes.destroy()


def test_every_camera_is_answered_on_its_own_topics_at_its_own_size(rig, rig_node):
    for camera, ((width, height), _, k, scale) in CAMERAS.items():
        h = header(f"{camera}_optical_frame")
        got = send_and_wait(rig[camera], image_for(camera, h), h, info_for(camera, h), OUTPUTS)
        assert set(got) == set(OUTPUTS), f"{camera}: {sorted(got)}\n{rig_node.output[-3000:]}"
        depth, info, labels = got["depth"], got["depth/camera_info"], got["semantic"]
        for msg in (depth, info, labels):
            assert msg.header.frame_id == f"{camera}_optical_frame" and msg.header.stamp == h.stamp
        assert (depth.width, depth.height) == (labels.width, labels.height) == (info.width, info.height) == (width,
                                                                                                              height)
        np.testing.assert_allclose(image_array(depth), MODEL_UNITS * scale, rtol=1e-3)  # its own scale factor
        np.testing.assert_allclose(np.reshape(info.k, 9), k)  # its own CameraInfo
    for camera, probe in rig.probes.items():  # nothing of another camera on this camera's topics
        frames = {m.header.frame_id for topic in OUTPUTS for m in probe.received(topic)}
        assert frames == {f"{camera}_optical_frame"}, (camera, frames)
    for camera in CAMERAS:  # each camera reports its own frames on its own /diagnostics status
        status = diagnostics_after(rig[camera], lambda d: int(d.get("frames_processed", 0)) >= 1)
        assert int(status.get("frames_processed", 0)) >= 1, (camera, status)


def test_garbage_on_one_camera_and_a_silent_one_cost_the_others_nothing(rig, rig_node):
    """left gets only broken images, rear nothing at all: every front frame is still answered, and the errors are
    counted on left's own status."""
    before = {camera: frame_counts(rig[camera].latest_diagnostics()) for camera in CAMERAS}
    left_errors = int(rig["left"].latest_diagnostics().get("errors/short_data", 0))
    for _ in range(4):
        broken = raw_image(smooth_rgb(96, 48), "bgr8", header("left_optical_frame"))
        broken.data = bytes(100)  # far fewer bytes than 48 rows × step
        rig["left"].image_pub.publish(broken)
        h = header("front_optical_frame")
        got = send_and_wait(rig["front"], image_for("front", h), h, info_for("front", h), OUTPUTS)
        assert set(got) == set(OUTPUTS), rig_node.output[-3000:]
    assert rig["left"].spin_until(
        lambda: int(rig["left"].latest_diagnostics().get("errors/short_data", 0)) > left_errors, 30)
    front, rear = rig["front"].latest_diagnostics(), rig["rear"].latest_diagnostics()
    assert not [key for key in front if key.startswith("errors/")], front
    assert frame_counts(rear)["received"] == before["rear"]["received"]  # silent: nothing counted, nothing waited


def test_overload_serves_every_camera_and_counts_every_frame_on_its_own_camera(ros_env, constant_depth_checkpoint):
    """Three cameras sending faster than the network runs, with reliable deep queues (the transport loses none).
    By design, per camera: every frame sent is delivered or dropped for a newer one of the same camera, frames are
    served in stamp order, and the camera's newest frame is served, so no camera starves."""
    node = start_node(rig_params(constant_depth_checkpoint, input_qos_reliability="reliable", input_qos_depth=100,
                                 output_qos_depth=100, output_resolution="network"), ros_env, "busyrig")
    rig = Rig("busyrig", ["depth"], input_depth=100)
    try:
        assert rig.wait_for_subscribers(60), node.output
        for camera in CAMERAS:  # both ends matched and warm
            h = header(camera)
            assert send_and_wait(rig[camera], image_for(camera, h), h, None, ["depth"]), node.output[-3000:]
        before = {}
        for camera in CAMERAS:
            diagnostics_after(rig[camera], all_frames_accounted)
            before[camera] = frame_counts(rig[camera].latest_diagnostics())
        sent = {camera: [] for camera in CAMERAS}
        for _ in range(15):  # every camera at ~50 Hz
            for camera in CAMERAS:
                h = header(camera)
                sent[camera].append(h)
                rig[camera].image_pub.publish(image_for(camera, h))
            rig["front"].spin_for(0.02)
        for camera in CAMERAS:
            newest = sent[camera][-1]
            assert rig[camera].spin_until(lambda: outputs_for(rig[camera], newest, ["depth"]), 120), \
                f"{camera}: its newest frame was not served\n{node.output[-3000:]}"
        for camera in CAMERAS:
            def delta(d: dict) -> dict:
                now, then = frame_counts(d), before[camera]
                return {k: now[k] - then[k] for k in now}
            settled = diagnostics_after(rig[camera], lambda d: all_frames_accounted(d) and delta(d)["received"]
                                        - delta(d)["rejected"] == len(sent[camera]), 60)
            counts = delta(settled)
            wanted = {stamp_ns(h) for h in sent[camera]}
            delivered = [stamp_ns(m.header) for m in rig[camera].received("depth") if stamp_ns(m.header) in wanted]
            assert delivered == sorted(set(delivered)), f"{camera}: out of stamp order, or a frame twice"
            assert delivered[-1] == stamp_ns(sent[camera][-1])
            assert counts["received"] - counts["rejected"] == len(sent[camera]), (camera, counts)
            assert counts["processed"] == len(delivered) and counts["idle"] == 0, (camera, counts, len(delivered))
            assert len(delivered) + counts["dropped"] == len(sent[camera]), (camera, counts, len(delivered))
            print(f"{camera}: {len(sent[camera])} sent, {len(delivered)} delivered, {counts['dropped']} dropped")
    finally:
        rig.destroy()
        assert node.stop(signal.SIGTERM) == 0, node.output[-4000:]
