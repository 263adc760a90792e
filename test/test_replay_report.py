"""The replay report writer: strict JSON, Markdown, plots and the preview strip."""
from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sgdepth_ros.labels import CLASS_NAMES
from sgdepth_ros.replay.report import (PANEL_HEIGHT, PLOT_NAMES, PREVIEW_NAME, TITLE_BAND, PreviewFrame,
                                       format_markdown, render_preview, write_report)

NAN = float("nan")


def _strict_loads(text: str):
    def reject(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=reject)


def make_summary(**changes) -> dict:
    iou = [0.91, 0.62, 0.8, NAN, 0.25, 0.31, NAN, 0.4, 0.85, 0.5, 0.9, 0.45, 0.1, 0.83, NAN, 0.2, NAN, 0.05, 0.33]
    summary = {
        "bag": "/data/bags/drive_0001", "mode": "offline", "model": "/models/sgdepth.pth",
        "model_description": "SGDepth ResNet18 192x640 (KITTI+Cityscapes)",
        "command": "sgdepth-ros replay /data/bags/drive_0001 --out runs/r1",
        "machine": "AMD EPYC 7B13, 2 cores", "date": "2026-11-24T10:00:00",
        "settings": {"rate": None, "use_sim_time": None, "protocol": "capped", "min_depth_eval": 0.001,
                     "max_depth_eval": 80.0, "output_resolution": "input"},
        "topics": {"image": "/camera/image_raw", "camera_info": "/camera/camera_info", "depth_gt": None,
                   "semantic_gt": "/gt/semantic", "lidar": "/velodyne_points"},
        "frames": {"in_bag": 42, "sent": 40, "delivered": 28, "dropped": 12, "dropped_by_node": 10, "lost": 2,
                   "evaluated_depth": 27, "evaluated_semantic": 25, "without_ground_truth": 1, "unreadable": 2},
        "depth": {
            "ground_truth": "lidar",
            "median": {"metrics": {"abs_rel": 0.11234, "sq_rel": 0.8123, "rmse": 4.56789, "rmse_log": 0.1901,
                                   "a1": 0.8766, "a2": 0.9587, "a3": 0.98123},
                       "ratio": {"median": 31.4159, "std": 2.71828, "count": 27}},
            "fixed": {"scale": 30.5, "metrics": {"abs_rel": 0.1345, "sq_rel": 0.9, "rmse": 5.0, "rmse_log": 0.2,
                                                 "a1": 0.81, "a2": 0.94, "a3": 0.97}},
            "bins_scaling": "fixed",
            "bins": [{"lo": 0.0, "hi": 10.0, "pixels": 12000, "abs_rel": 0.081, "rmse": 0.9, "a1": 0.93},
                     {"lo": 10.0, "hi": 30.0, "pixels": 5000, "abs_rel": 0.152, "rmse": 3.1, "a1": 0.8},
                     {"lo": 30.0, "hi": 80.0, "pixels": 0, "abs_rel": NAN, "rmse": NAN, "a1": NAN}],
        },
        "segmentation": {"miou": 0.5234, "pixel_acc": 0.9123, "mean_acc": 0.6345, "pixels": 123456,
                         "iou": iou, "class_names": list(CLASS_NAMES)},
        "latency_ms": {"what": "predictor time per frame", "p50": 41.25, "p95": 63.5, "mean": 44.0, "max": 91.0,
                       "count": 28, "samples": [30.0 + (i * 7) % 40 + 0.25 for i in range(27)] + [91.0]},
        "node": {"frames_in": 28, "frames_out": 28, "errors": {"decode": 2}, "backend": "onnxruntime"},
        "throughput_fps": 12.3456, "wall_s": 3.25,
        "errors": [],
        "complete": True,
        "outputs": {"bag": None, "report_json": "", "report_md": "", "plots": [], "preview": None},
    }
    summary.update(changes)
    return summary


def make_previews(h: int = 48, w: int = 96) -> list[PreviewFrame]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    pred = np.linspace(2.0, 40.0, h * w, dtype=np.float32).reshape(h, w)
    pred[0, 0] = np.nan
    dense_gt = pred * 1.1
    dense_gt[:5] = 0.0
    sparse_gt = np.zeros((h, w), np.float32)  # LiDAR-like: a few points, all in the bottom half
    sparse_gt[30::6, 4::8] = 12.0
    labels = (np.arange(h * w).reshape(h, w) % 19).astype(np.uint8)
    labels[:4] = 255
    return [PreviewFrame(1_000_000_000, rgb, pred, dense_gt, labels, labels.copy()),
            PreviewFrame(1_100_000_000, rgb, pred, sparse_gt, labels, None)]


def test_write_report_files(tmp_path):
    summary = make_summary()
    outputs = write_report(summary, tmp_path / "run", make_previews())
    out = tmp_path / "run"
    assert summary["outputs"] is outputs
    assert outputs["report_json"] == str(out / "report.json") and outputs["report_md"] == str(out / "report.md")
    assert sorted(Path(p).name for p in outputs["plots"]) == sorted(PLOT_NAMES.values())
    assert "warnings" not in outputs

    data = _strict_loads((out / "report.json").read_text())  # NaN written as null, never as NaN
    assert data["segmentation"]["iou"][3] is None and data["segmentation"]["iou"][0] == 0.91
    assert data["depth"]["bins"][2]["abs_rel"] is None and data["depth"]["bins"][2]["pixels"] == 0
    assert data["depth"]["median"]["metrics"]["rmse"] == 4.56789
    assert data["latency_ms"]["samples"] == summary["latency_ms"]["samples"]
    assert data["frames"] == summary["frames"] and data["outputs"] == outputs
    assert data["settings"]["rate"] is None

    md = (out / "report.md").read_text()
    assert md == format_markdown(summary)
    for name in PLOT_NAMES.values():  # relative links, from the Markdown's folder
        assert f"]({name})" in md
    assert f"]({PREVIEW_NAME})" in md and "](report.json)" in md

    for name in PLOT_NAMES.values():
        path = out / name
        img = cv2.imread(str(path))
        assert img is not None and img.shape[0] > 200 and img.shape[1] > 400
        assert path.stat().st_size < 100_000

    preview = cv2.imread(str(out / PREVIEW_NAME))
    panel_w = 96 * PANEL_HEIGHT // 48
    assert preview.shape == (TITLE_BAND + 2 * PANEL_HEIGHT, 5 * panel_w, 3)
    assert preview[:TITLE_BAND].max() > 0  # titles
    # first column is the image: a resized copy of the input (RGB→BGR on write)
    first = cv2.cvtColor(preview[TITLE_BAND:TITLE_BAND + PANEL_HEIGHT, :panel_w], cv2.COLOR_BGR2RGB)
    expected = cv2.resize(make_previews()[0].rgb, (panel_w, PANEL_HEIGHT), interpolation=cv2.INTER_LINEAR)
    assert np.abs(first[:120].astype(int) - expected[:120]).mean() < 2  # bottom rows carry the stamp text
    # labels pred column: road colour (128, 64, 128) somewhere, black where unknown (top rows)
    lab = cv2.cvtColor(preview[TITLE_BAND:TITLE_BAND + PANEL_HEIGHT, 3 * panel_w:4 * panel_w], cv2.COLOR_BGR2RGB)
    assert (lab[:10] == 0).all() and (lab == (128, 64, 128)).all(axis=2).any()
    # row 2 has no GT labels: its last column is black apart from the "n/a" text
    assert (preview[TITLE_BAND + PANEL_HEIGHT:, 4 * panel_w:] > 0).mean() < 0.05


def test_preview_gt_depth_black_without_ground_truth():
    frames = make_previews()
    strip = render_preview(frames)
    panel_w = 96 * PANEL_HEIGHT // 48
    scale = PANEL_HEIGHT / 48
    dense = strip[TITLE_BAND:TITLE_BAND + PANEL_HEIGHT, 2 * panel_w:3 * panel_w]
    assert (dense[:int(5 * scale) - 1] == 0).all()  # no GT in the first 5 rows
    assert (dense[int(5 * scale) + 1:] > 0).any(axis=2).mean() > 0.99
    sparse = strip[TITLE_BAND + PANEL_HEIGHT:, 2 * panel_w:3 * panel_w]
    lit = sparse.any(axis=2)
    assert not lit[:int(30 * scale) - 2].any()  # top: no LiDAR points there
    assert 0 < lit.mean() < 0.2  # points are drawn but stay sparse
    # every point is dilated: it covers at least 3x3 panel pixels
    ys, xs = np.nonzero(lit)
    y, x = int(30 * scale), int(4 * scale)
    assert lit[y - 1:y + 2, x - 1:x + 2].all()
    # same colour range as the prediction: GT 12 m has the colour the prediction has at 12 m
    pred_panel = strip[TITLE_BAND + PANEL_HEIGHT:, panel_w:2 * panel_w].astype(int)
    pred = cv2.resize(frames[1].depth_pred, (panel_w, PANEL_HEIGHT), interpolation=cv2.INTER_LINEAR)
    near12 = np.argwhere(np.abs(pred - 12.0) < 0.05)
    py, px = near12[len(near12) // 2]
    assert np.abs(pred_panel[py, px] - sparse[y, x].astype(int)).max() <= 12


def test_preview_columns_follow_the_data(tmp_path):
    frames = make_previews()
    no_gt_labels = [PreviewFrame(f.stamp_ns, f.rgb, f.depth_pred, f.depth_gt, f.labels_pred, None) for f in frames]
    full, narrower = render_preview(frames), render_preview(no_gt_labels)
    panel_w = 96 * PANEL_HEIGHT // 48
    assert narrower.shape == (full.shape[0], full.shape[1] - panel_w, 3)
    only_rgb = render_preview([PreviewFrame(5, frames[0].rgb)])
    assert only_rgb.shape == (TITLE_BAND + PANEL_HEIGHT, panel_w, 3)
    assert render_preview([]) is None
    summary = make_summary()
    assert write_report(summary, tmp_path, [])["preview"] is None
    assert not (tmp_path / PREVIEW_NAME).exists()


def test_markdown_content():
    md = format_markdown(make_summary())
    assert "SGDepth ResNet18 192x640" in md and "AMD EPYC 7B13, 2 cores" in md
    assert "sgdepth-ros replay /data/bags/drive_0001" in md and "2026-11-24T10:00:00" in md
    assert "dropped 12 of 40 (30 %)" in md
    assert "Partial results" not in md
    rows = [line for line in md.splitlines() if line.startswith("| median scaling")]
    assert rows == ["| median scaling | 0.112 | 0.812 | 4.568 | 0.190 | 0.877 | 0.959 | 0.981 |"]
    assert "| fixed scale ×30.5 | 0.135 | 0.900 | 5.000 | 0.200 | 0.810 | 0.940 | 0.970 |" in md
    assert "δ<1.25²" in md and "median 31.416, std 2.718 over 27 frames" in md
    assert "| 0–10 | 12000 | 0.081 | 0.900 | 0.930 |" in md
    assert "| 30–80 | 0 | – | – | – |" in md
    assert "mIoU **0.523**" in md and "pixel accuracy 0.912" in md and "mean accuracy 0.634" in md
    iou_rows = [line for line in md.splitlines() if line.count("|") == 4 and line.split("|")[1].strip().isdigit()]
    assert len(iou_rows) == 19
    assert "| 3 | wall | – |" in md and "| 0 | road | 0.910 |" in md
    assert "p50 41.2 ms" in md or "p50 41.3 ms" in md
    assert "p95 63.5 ms, mean 44.0 ms, max 91.0 ms over 28 frames" in md and "predictor time per frame" in md
    assert "12.35 frames/s" in md
    assert "| backend | onnxruntime |" in md and '| errors | {"decode": 2} |' in md
    assert not re.search(r"\bnan\b|\binf\b", md, re.IGNORECASE)


def test_partial_results_and_missing_sections(tmp_path):
    summary = make_summary(errors=["bag read failed after 12 frames: truncated chunk"], complete=False,
                           depth=None, segmentation=None, latency_ms=None, node=None)
    md = format_markdown(summary)
    assert "**Partial results**" in md and "bag read failed after 12 frames: truncated chunk" in md
    assert md.index("Partial results") < md.index("## Frames")
    assert "no depth ground truth in the bag" in md and "no semantic ground truth in the bag" in md
    assert "no latency measured" in md and "no node diagnostics" in md
    assert "abs_rel" not in md and "mIoU" not in md

    outputs = write_report(summary, tmp_path, make_previews())
    assert outputs["plots"] == []
    for name in PLOT_NAMES.values():
        assert not (tmp_path / name).exists()
    assert (tmp_path / PREVIEW_NAME).exists()
    data = _strict_loads((tmp_path / "report.json").read_text())
    assert data["depth"] is None and data["errors"] == summary["errors"] and data["complete"] is False


def test_stale_plots_removed_and_output_bag_linked(tmp_path):
    out = tmp_path / "reports"
    write_report(make_summary(), out, [])
    assert (out / PLOT_NAMES["latency"]).exists()
    summary = make_summary(latency_ms={"what": "x", "p50": None, "p95": None, "mean": None, "max": None,
                                       "count": 0, "samples": []}, segmentation=None)
    summary["outputs"]["bag"] = str(tmp_path / "out_bag")
    outputs = write_report(summary, out, [], stem="second")
    assert [Path(p).name for p in outputs["plots"]] == [PLOT_NAMES["distance"]]
    assert not (out / PLOT_NAMES["latency"]).exists() and not (out / PLOT_NAMES["iou"]).exists()
    md = (out / "second.md").read_text()
    assert "[output bag](../out_bag)" in md and "](second.json)" in md


def test_without_matplotlib_plots_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    summary = make_summary()
    outputs = write_report(summary, tmp_path, make_previews())
    assert outputs["plots"] == [] and any("matplotlib" in w for w in outputs["warnings"])
    assert "matplotlib is not installed" in (tmp_path / "report.md").read_text()
    assert (tmp_path / PREVIEW_NAME).exists()
    assert _strict_loads((tmp_path / "report.json").read_text())["outputs"]["warnings"]


def test_import_does_not_load_matplotlib():
    code = "import sys, sgdepth_ros.replay.report; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_input_summary_not_mangled():
    summary = make_summary()
    before = copy.deepcopy(summary)
    format_markdown(summary)
    assert math.isnan(summary["segmentation"]["iou"][3])
    assert summary.keys() == before.keys() and summary["frames"] == before["frames"]


@pytest.mark.parametrize("sent,dropped,text", [(0, 0, "dropped 0 of 0 (n/a)"), (3, 1, "dropped 1 of 3 (33.3 %)")])
def test_drop_line(sent, dropped, text):
    summary = make_summary()
    summary["frames"].update(sent=sent, dropped=dropped)
    assert text in format_markdown(summary)
