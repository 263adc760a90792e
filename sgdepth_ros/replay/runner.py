"""Run a replay's cameras (:class:`.channel.Channel`) offline or live, one camera or several alike.

offline: one predictor in this process; with a measured scale each camera has its own scale source (its own filter
state), as in the node. live: one node process (several cameras: its ``cameras`` parameter), see :mod:`.live`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .channel import Channel
from .frames import ReplayFrame


def run_offline_channels(channels: dict[str | None, Channel], frames: Iterable[tuple[str | None, ReplayFrame]],
                         model: Path, device: str, backend: str, scale: float | None, progress=None
                         ) -> tuple[dict, float, str]:
    """Every ``(camera, frame)`` through one predictor → (camera → {"sent", "latency_ms"}, wall time in s, the
    predictor's description after the run). ``scale``: metres per model unit of the outputs (None: relative)."""
    from ..predictor import Predictor
    from ..scale import CameraHeightScale
    from .offline import OfflineCamera, run_cameras

    first = next(iter(channels.values()))
    by_height = first.camera_height is not None
    predictor = Predictor(model, device=device, backend=backend, output_resolution="input",
                          scale_mode="camera_height" if by_height else "auto",
                          scale_factor=None if by_height else scale, camera_height=first.camera_height)
    sources = {name: CameraHeightScale(c.camera_height, source=c.height_source.split(":")[0])
               for name, c in channels.items()} if by_height else {}  # labelled with where its height came from
    if by_height:
        predictor.scale = sources[first.name]
    cameras = {name: OfflineCamera(c.recorder, sources.get(name)) for name, c in channels.items()}
    wall_s = run_cameras(frames, predictor, cameras, progress)
    description = predictor.describe()  # after the run: a measured scale says where it ended
    if by_height and first.name:
        description += f" (camera {first.name}; each camera measures its own scale)"
    return {name: {"sent": c.sent, "latency_ms": c.latency_ms} for name, c in cameras.items()}, wall_s, description


def run_live_channels(channels: dict[str | None, Channel], frames: Iterable[tuple[str | None, ReplayFrame]],
                      settings, progress=None) -> tuple[dict, float, str, tuple[int, str], bool]:
    """Play the frames to one node process (:class:`.live.LiveSettings` ``settings``) → (camera → its live result,
    wall time in s, the node's model line, (ROS domain id, its source), whether the node was alive at the end)."""
    from .live import LiveReplay
    from .live_camera import LiveCamera

    cameras = []
    for name, c in channels.items():
        prefix = settings.namespace if name is None else f"{settings.namespace}/{name}"
        strip = len(prefix) + 1  # the camera's topics relative to its outputs' namespace
        cameras.append(LiveCamera(name, c.topics.image, c.topics.camera_info, c.compressed,
                                  {k: t[strip:] for k, (t, _) in c.full.items()},
                                  {k: t[strip:] for k, (t, _) in (c.relative or {}).items() if t != c.full[k][0]},
                                  camera_height=c.camera_height))
    live = LiveReplay(settings, cameras=cameras)
    with live:
        domain = (live.domain_id, live.domain_source)
        result = live.play_cameras(frames, {name: c.recorder for name, c in channels.items()}, progress)
    description = node_model_line(live.node_output) or settings.model
    return result["cameras"], result["wall_s"], description, domain, result["node_alive"]


def node_model_line(output: str) -> str:
    """The node's "model ready: …" description from its log, with its "scale (applied per frame by the node): …"
    line when it measures the scale itself (its predictor then gives model units)."""
    parts = []
    for marker in ("model ready: ", "scale (applied per frame by the node): "):
        for line in output.splitlines():
            if marker in line:
                parts.append(line.split(marker, 1)[1].strip())
                break
    return "; scale applied by the node: ".join(parts)
