"""The preview strip of a bag replay: one row per frame, image | depth | GT depth | labels | GT labels.

numpy/OpenCV only. Depth columns share the row's colour range (the prediction's 2nd–98th percentile); sparse
ground truth (LiDAR) is drawn as 3×3 dots, black where there is none; a column nobody has is left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..colorize import colorize_depth, colorize_labels

PANEL_HEIGHT = 160  #: preview panel height in pixels (width keeps the frame's aspect)
TITLE_BAND = 20  #: height of the preview's top band with the column titles
PREVIEW_NAME = "preview.png"
_SPARSE_FRACTION = 0.3  # GT depth with fewer valid pixels than this is drawn as (dilated) points


@dataclass
class PreviewFrame:
    """One frame of the preview strip; every array has the same H×W.

    ``depth_pred``: metres or model units (NaN/≤0 invalid); ``depth_gt``: metres, 0/NaN where none (may be
    sparse LiDAR); ``labels_*``: trainIds, 255 unknown; ``label``: the camera's name, written in the image's
    top-left corner (several cameras).
    """

    stamp_ns: int
    rgb: np.ndarray
    depth_pred: np.ndarray | None = None
    depth_gt: np.ndarray | None = None
    labels_pred: np.ndarray | None = None
    labels_gt: np.ndarray | None = None
    label: str | None = None


def _panel_size(h: int, w: int) -> tuple[int, int]:
    return PANEL_HEIGHT, max(1, round(w * PANEL_HEIGHT / h))


def _resize(img: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    ph, pw = size
    if img.shape[:2] == (ph, pw):
        return img
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if img.shape[0] > ph else cv2.INTER_LINEAR)
    return cv2.resize(img, (pw, ph), interpolation=interp)


def _depth_range(depth: np.ndarray) -> tuple[float, float] | None:
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        return None
    lo, hi = np.percentile(depth[valid], (2, 98))
    return float(lo), float(hi)


def _gt_depth_panel(gt: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """GT depth at panel size, 0 where none. Sparse GT: each point lands on its panel pixel (nearest wins) and
    fills its empty 3×3 neighbourhood, so points stay visible at any scale; dense GT: nearest resize."""
    ph, pw = size
    gt = np.asarray(gt, np.float32)
    valid = np.isfinite(gt) & (gt > 0)
    if valid.mean() >= _SPARSE_FRACTION:
        return _resize(np.where(valid, gt, 0).astype(np.float32), size, nearest=True)
    h, w = gt.shape
    ys, xs = np.nonzero(valid)
    py = np.minimum((ys * ph) // h, ph - 1)
    px = np.minimum((xs * pw) // w, pw - 1)
    near = np.full((ph, pw), np.inf, np.float32)
    np.minimum.at(near, (py, px), gt[ys, xs])
    grown = cv2.erode(near, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=np.inf)
    out = np.where(np.isfinite(near), near, grown)
    return np.where(np.isfinite(out), out, 0).astype(np.float32)


def _put(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.4) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


_COLUMNS = (("rgb", "image"), ("depth_pred", "depth (pred)"), ("depth_gt", "depth (GT, pred range)"),
            ("labels_pred", "labels (pred)"), ("labels_gt", "labels (GT)"))


def _row_panels(frame: PreviewFrame, columns: list[str]) -> dict[str, np.ndarray | None]:
    rgb = np.asarray(frame.rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    rgb = rgb[:, :, :3].astype(np.uint8, copy=False)
    size = _panel_size(*rgb.shape[:2])
    panels: dict[str, np.ndarray | None] = {"rgb": np.ascontiguousarray(_resize(rgb, size))}
    rng = None
    if frame.depth_pred is not None:
        rng = _depth_range(np.asarray(frame.depth_pred, np.float32))
    if rng is None and frame.depth_gt is not None:
        rng = _depth_range(np.asarray(frame.depth_gt, np.float32))
    if "depth_pred" in columns and frame.depth_pred is not None:
        pred = np.asarray(frame.depth_pred, np.float32)
        colour = colorize_depth(pred, *rng) if rng else np.zeros(pred.shape + (3,), np.uint8)
        panel = np.ascontiguousarray(_resize(colour, size))
        if rng:
            _put(panel, f"{rng[0]:.3g}-{rng[1]:.3g}", (3, size[0] - 5), 0.35)
        panels["depth_pred"] = panel
    if "depth_gt" in columns and frame.depth_gt is not None:
        gt = _gt_depth_panel(frame.depth_gt, size)
        panels["depth_gt"] = colorize_depth(gt, *rng) if rng else np.zeros(size + (3,), np.uint8)
    for key in ("labels_pred", "labels_gt"):
        labels = getattr(frame, key)
        if key in columns and labels is not None:
            panels[key] = colorize_labels(_resize(np.asarray(labels, np.uint8), size, nearest=True))
    _put(panels["rgb"], f"t={frame.stamp_ns / 1e9:.3f}s", (3, size[0] - 5), 0.35)
    if frame.label:
        _put(panels["rgb"], frame.label, (3, 14), 0.4)
    return panels


def render_preview(previews: list[PreviewFrame]) -> np.ndarray | None:
    """The preview strip as an RGB uint8 image (None without frames).

    Height ``TITLE_BAND + len(previews) * PANEL_HEIGHT``; a column appears when any frame has it (black where a
    frame lacks it); a column's width is its widest panel (rows of narrower frames are padded with black).
    """
    if not previews:
        return None
    columns = [key for key, _ in _COLUMNS if key == "rgb" or any(getattr(f, key) is not None for f in previews)]
    rows = [_row_panels(f, columns) for f in previews]
    widths = [max((r[c].shape[1] if r.get(c) is not None else r["rgb"].shape[1]) for r in rows) for c in columns]
    canvas = np.zeros((TITLE_BAND + PANEL_HEIGHT * len(rows), sum(widths), 3), np.uint8)
    x = 0
    titles = dict(_COLUMNS)
    for c, w in zip(columns, widths):
        cv2.putText(canvas, titles[c], (x + 4, TITLE_BAND - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
        for i, r in enumerate(rows):
            panel = r.get(c)
            y = TITLE_BAND + i * PANEL_HEIGHT
            if panel is None:
                _put(canvas, "n/a", (x + 4, y + PANEL_HEIGHT // 2), 0.4)
                continue
            canvas[y:y + PANEL_HEIGHT, x:x + panel.shape[1]] = panel
        x += w
    return canvas


