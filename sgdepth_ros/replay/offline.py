"""Offline replay: every frame of the bag through the predictor in this process, in order, none dropped.

Each prediction is rendered into the node's output messages by the node's own code
(:func:`sgdepth_ros.ros.outputs.render`, :func:`sgdepth_ros.ros.messages.output_messages`), so the output bag and the
scores are what the node would publish for the same frame.

With a predictor made with scale_mode ``camera_height`` every frame is given its CameraInfo's rectified camera matrix
(P[:3, :3]) so the scale is measured on it, in bag order, as the node does; the frame's scale (applied factor, own
estimate, filtered scale) goes to the evaluator with it.

Several cameras (:func:`run_cameras`): one predictor, the frames of all cameras in bag order; each camera has its own
recorder and, with a measured scale, its own scale source (per-camera filter state), as in the node.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Hashable, Iterable

from ..predictor import Predictor
from ..ros.camera_model import scale_geometry
from ..scale import CameraHeightScale, ScaleSource
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


def output_messages_for(frame: ReplayFrame, predictor: Predictor, settings: RenderSettings = RenderSettings(),
                        scale: ScaleSource | None = None) -> tuple[dict, float, FrameScale | None]:
    """Predict one frame and render every output as the node does → (key → message, predictor time in ms, the
    frame's camera-height scale or None when the scale does not measure one).

    ``scale``: the frame's camera's own scale source (None: the predictor's). With a camera-height scale a frame
    without a CameraInfo counts as one without an estimate (no intrinsics)."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo

    from ..ros.messages import output_messages

    source = scale if scale is not None else getattr(predictor, "scale", None)
    if isinstance(source, CameraHeightScale):
        prediction = predictor.predict(frame.rgb, intrinsics=frame.K, scale=scale)
        frame_scale = FrameScale(prediction.scale, source.last_estimate, source.state.scale)
    else:
        prediction = predictor.predict(frame.rgb) if scale is None else predictor.predict(frame.rgb, scale=scale)
        frame_scale = None
    height, width = (prediction.depth if prediction.depth is not None else prediction.labels).shape
    geometry = info = None
    if frame.geometry is not None:  # validated by the frame reader
        geometry = scale_geometry(frame.geometry, width, height)
        info = deserialize_message(frame.info_raw, CameraInfo)
    outputs = render(prediction, set(OUTPUT_KEYS), settings, geometry)
    return output_messages(outputs, frame_header(frame), info, geometry, set(OUTPUT_KEYS)), \
        sum(prediction.timings.values()), frame_scale


@dataclass
class OfflineCamera:
    """One camera of an offline replay: its recorder, its own scale source (None: the predictor's), and what was
    done: frames sent, predictor time per frame (ms)."""

    recorder: FrameRecorder
    scale: ScaleSource | None = None
    sent: int = 0
    latency_ms: list[float] = field(default_factory=list)


def run_cameras(frames: Iterable[tuple[Hashable, ReplayFrame]], predictor: Predictor,
                cameras: dict[Hashable, OfflineCamera], progress=None) -> float:
    """Every ``(camera, frame)`` → predictor → that camera's recorder, in the given order. Returns the wall time (s).

    ``progress``: a tqdm bar to advance per frame (or None).
    """
    start = time.perf_counter()
    for key, frame in frames:
        camera = cameras[key]
        camera.sent += 1
        camera.recorder.write_inputs(frame)
        messages, predict_ms, scale = output_messages_for(frame, predictor, scale=camera.scale)
        camera.latency_ms.append(predict_ms)
        camera.recorder.add(frame, messages, predict_ms, scale)
        if progress is not None:
            progress.update(1)
    return time.perf_counter() - start


def run_offline(frames: Iterable[ReplayFrame], predictor: Predictor, recorder: FrameRecorder,
                progress=None) -> dict:
    """Every frame of one camera → predictor → recorder. Returns ``{"sent", "latency_ms" (predictor time per frame),
    "wall_s"}``."""
    camera = OfflineCamera(recorder)
    wall_s = run_cameras(((None, frame) for frame in frames), predictor, {None: camera}, progress)
    return {"sent": camera.sent, "latency_ms": camera.latency_ms, "wall_s": wall_s}
