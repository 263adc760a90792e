"""Offline replay: every frame of the bag through the predictor in this process, in order, none dropped.

Each prediction is rendered into the node's output messages by the node's own code
(:func:`sgdepth_ros.ros.outputs.render`, :func:`sgdepth_ros.ros.messages.output_messages`), so the output bag and the
scores are what the node would publish for the same frame.

With a predictor made with scale_mode ``camera_height`` every frame is given its CameraInfo's rectified camera matrix
(P[:3, :3]) so the scale is measured on it, in bag order, as the node does; the frame's scale (applied factor, own
estimate, filtered scale) goes to the evaluator with it.
"""
from __future__ import annotations

import time
from typing import Iterable

from ..predictor import Predictor
from ..ros.camera_model import scale_geometry
from ..scale import CameraHeightScale
from ..ros.outputs import OUTPUT_KEYS, RenderSettings, render
from .evaluate import FrameScale
from .frames import ReplayFrame
from .recorder import FrameRecorder


def frame_header(frame: ReplayFrame):
    """The frame's header (stamp, frame_id) as a std_msgs/Header for the output messages."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    sec, nanosec = divmod(frame.stamp_ns, 1_000_000_000)
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame.frame_id)


def output_messages_for(frame: ReplayFrame, predictor: Predictor, settings: RenderSettings = RenderSettings()
                        ) -> tuple[dict, float, FrameScale | None]:
    """Predict one frame and render every output as the node does → (key → message, predictor time in ms, the
    frame's camera-height scale or None when the predictor's scale does not measure one).

    With a camera-height scale a frame without a CameraInfo counts as one without an estimate (no intrinsics)."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo

    from ..ros.messages import output_messages

    source = getattr(predictor, "scale", None)
    if isinstance(source, CameraHeightScale):
        prediction = predictor.predict(frame.rgb, intrinsics=frame.K)
        scale = FrameScale(prediction.scale, source.last_estimate, source.state.scale)
    else:
        prediction, scale = predictor.predict(frame.rgb), None
    height, width = (prediction.depth if prediction.depth is not None else prediction.labels).shape
    geometry = info = None
    if frame.geometry is not None:  # validated by the frame reader
        geometry = scale_geometry(frame.geometry, width, height)
        info = deserialize_message(frame.info_raw, CameraInfo)
    outputs = render(prediction, set(OUTPUT_KEYS), settings, geometry)
    return output_messages(outputs, frame_header(frame), info, geometry, set(OUTPUT_KEYS)), \
        sum(prediction.timings.values()), scale


def run_offline(frames: Iterable[ReplayFrame], predictor: Predictor, recorder: FrameRecorder,
                progress=None) -> dict:
    """Every frame → predictor → recorder. Returns ``{"sent", "latency_ms" (predictor time per frame), "wall_s"}``.

    ``progress``: a tqdm bar to advance per frame (or None).
    """
    latencies: list[float] = []
    sent = 0
    start = time.perf_counter()
    for frame in frames:
        sent += 1
        recorder.write_inputs(frame)
        messages, predict_ms, scale = output_messages_for(frame, predictor)
        latencies.append(predict_ms)
        recorder.add(frame, messages, predict_ms, scale)
        if progress is not None:
            progress.update(1)
    return {"sent": sent, "latency_ms": latencies, "wall_s": time.perf_counter() - start}
