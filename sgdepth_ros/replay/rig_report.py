"""The per-camera part of a multi-camera replay's report (``--cameras``): counts summed over cameras, the camera table
(one row per camera and an overall row) for report.md and the console, the cameras' topics and node counters.

Report layout (``report.json``): the top-level ``frames``, ``depth``, ``segmentation``, ``camera_height``,
``latency_ms`` and ``latency_depth_ms`` are the overall ones (:data:`POOLING` says how cameras are pooled; the
plots show them), ``cameras`` maps each camera to the same sections of its own (plus ``topics``, ``node`` and
``per_frame``), ``settings.cameras`` lists them in order.
"""
from __future__ import annotations

from collections import Counter

from .cells import DASH, count, fmt, table

POOLING = ("every frame of every camera pooled: the depth table is the mean over all evaluated frames (each frame "
           "weighs the same, as within a camera), distance bins and segmentation are over all pixels, latency "
           "percentiles over all delivered frames, frame counts are sums")


def overall_frames(cameras: dict[str, dict]) -> dict:
    """The cameras' ``frames`` sections summed key by key (None where a camera has None), unreadable kinds merged."""
    sections = [camera["frames"] for camera in cameras.values()]
    total: dict = {}
    for key in sections[0]:
        if key == "unreadable_kinds":
            kinds: Counter = Counter()
            for frames in sections:
                kinds.update(frames.get(key) or {})
            total[key] = dict(kinds)
        else:
            values = [frames.get(key) for frames in sections]
            total[key] = None if any(v is None for v in values) else sum(values)
    return total


def pooled_sections(evaluator) -> dict:
    """The overall ``depth``, ``segmentation`` and ``camera_height`` sections from the evaluator that saw every frame
    of every camera; a filtered scale's jitter and range mix the cameras' own scales there, so they are left out
    (each camera's are in its own section)."""
    sections = evaluator.summary()
    if sections.get("camera_height"):
        sections["camera_height"].update(jitter=None, filtered_scale=None)
    return sections


def _metric(section: dict | None, *path: str):
    for key in path:
        if not section:
            return None
        section = section.get(key)
    return section


def camera_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the camera table: per camera and ``overall``: frames sent / delivered / dropped, AbsRel and
    δ<1.25 (median scaling), AbsRel with the fixed scale and with the camera-height scale (when any camera has
    them), mIoU, latency p50 / p95 in ms."""
    named = dict(summary.get("cameras") or {})
    parts = [(name, part) for name, part in named.items()] + [("overall", summary)]
    fixed = any(_metric(part, "depth", "fixed", "metrics") for _, part in parts)
    height = any(_metric(part, "camera_height", "metrics") for _, part in parts)
    header = ["camera", "sent", "delivered", "dropped", "AbsRel", "δ<1.25"] + (["AbsRel fixed"] if fixed else []) \
        + (["AbsRel camera height"] if height else []) + ["mIoU", "latency p50 ms", "latency p95 ms"]
    rows = []
    for name, part in parts:
        frames = part.get("frames") or {}
        row = [name, count(frames.get("sent")), count(frames.get("delivered")), count(frames.get("dropped")),
               fmt(_metric(part, "depth", "median", "metrics", "abs_rel")),
               fmt(_metric(part, "depth", "median", "metrics", "a1"))]
        if fixed:
            row.append(fmt(_metric(part, "depth", "fixed", "metrics", "abs_rel")))
        if height:
            row.append(fmt(_metric(part, "camera_height", "metrics", "abs_rel")))
        row += [fmt(_metric(part, "segmentation", "miou")), fmt(_metric(part, "latency_ms", "p50"), 1),
                fmt(_metric(part, "latency_ms", "p95"), 1)]
        rows.append(row)
    return header, rows


def cameras_section(summary: dict) -> list[str]:
    """The report.md section of the cameras (empty for a single-camera replay)."""
    cameras = summary.get("cameras")
    if not cameras:
        return []
    header, rows = camera_table(summary)
    rows[-1][0] = "**overall**"
    latency = (summary.get("latency_ms") or {}).get("what") or DASH
    out = ["## Cameras", "",
           f"{len(cameras)} cameras replayed together (one model). Overall: {summary.get('pooling') or POOLING}. "
           f"AbsRel and δ<1.25 with per-image median scaling; latency: {latency}.", ""]
    out += table(header, rows) + [""]
    roles = ("image", "camera_info", "depth_gt", "semantic_gt")
    heights = {name: part.get("camera_height") for name, part in cameras.items()}
    rows = [[name] + [f"`{part['topics'][r]}`" if part["topics"].get(r) else DASH for r in roles]
            + ([f"{fmt(heights[name].get('height_m'), 3)} m ({heights[name].get('height_source') or DASH})"
                if heights[name] else DASH] if any(heights.values()) else []) for name, part in cameras.items()]
    out += table(["camera", *roles] + (["camera height"] if any(heights.values()) else []), rows,
                 ["---"] * len(rows[0])) + [""]
    nodes = {name: part.get("node") or {} for name, part in cameras.items()}
    keys = [key for key in dict.fromkeys(k for node in nodes.values() for k in node)]
    if keys:
        out += ["Node diagnostics per camera (its /diagnostics status):", ""]
        out += table(["key", *nodes], [[key] + [_short(nodes[name].get(key)) for name in nodes] for key in keys],
                     ["---"] * (len(nodes) + 1)) + [""]
    out += ["The sections below are the overall ones (all cameras pooled).", ""]
    return out


def _short(value) -> str:
    text = DASH if value is None else " ".join(str(value).split())
    return (text[:59] + "…" if len(text) > 60 else text).replace("|", "\\|")


def console_lines(summary: dict) -> list[str]:
    """The camera table as aligned console lines (empty for a single-camera replay)."""
    if not summary.get("cameras"):
        return []
    header, rows = camera_table(summary)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
            for r in [header, *rows]]
