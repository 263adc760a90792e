"""The sgdepth-ros command line: infer over odd inputs, convert, demo, help."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sgdepth_ros.cli import main
from sgdepth_ros.samples import road_scene

FAST = ["--backend", "torch", "--device", "cpu", "--width", "128", "--height", "64"]


@pytest.fixture
def odd_inputs(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    rgb = road_scene(200, 80, seed=1)
    cv2.imwrite(str(d / "colour.png"), rgb[..., ::-1])
    cv2.imwrite(str(d / "colour.jpg"), rgb[..., ::-1])  # same stem as colour.png
    cv2.imwrite(str(d / "grey.png"), rgb[..., 0])
    cv2.imwrite(str(d / "alpha.png"), np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(d / "deep.png"), rgb[..., ::-1].astype(np.uint16) * 257)
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_infer_handles_odd_inputs_and_fails_loudly_on_broken_ones(odd_inputs, tmp_path, ours_safetensors, capsys):
    out = tmp_path / "out"
    code = main(["infer", "--model", ours_safetensors, "--input", str(odd_inputs), "--output", str(out), "--npy", *FAST])
    captured = capsys.readouterr()
    assert code == 1  # one file failed
    assert "broken.png" in captured.err and "not a decodable image" in captured.err
    for stem in ("colour", "colour_png", "grey", "alpha", "deep"):  # colour.jpg sorts first
        for suffix in ("_depth.png", "_depth.npy", "_labels.png", "_depth_color.png", "_seg_color.png",
                       "_overlay.png", "_preview.png"):
            assert (out / f"{stem}{suffix}").is_file(), f"{stem}{suffix}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 5 and len(summary["failed"]) == 1
    assert any("notes.txt" in s for s in summary["skipped"])
    # results at input size; 16-bit depth PNG = depth·256 (KITTI); labels are trainIds
    depth_png = cv2.imread(str(out / "colour_depth.png"), cv2.IMREAD_UNCHANGED)
    depth = np.load(out / "colour_depth.npy")
    assert depth_png.dtype == np.uint16 and depth_png.shape == depth.shape == (80, 200)
    assert np.abs(depth_png / 256.0 - depth).max() <= 0.5 / 256 + 1e-6
    labels = cv2.imread(str(out / "colour_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint8 and labels.max() <= 18
    preview = cv2.imread(str(out / "colour_preview.png"))
    assert preview.shape == (240, 200, 3)


def test_infer_single_file_succeeds(tmp_path, ours_safetensors):
    img = tmp_path / "one.png"
    cv2.imwrite(str(img), road_scene(160, 64)[..., ::-1])
    assert main(["infer", "--model", ours_safetensors, "--input", str(img), "--output", str(tmp_path / "o"),
                 "--format", "jpg", "--no-preview", *FAST]) == 0
    assert (tmp_path / "o" / "one_overlay.jpg").is_file() and not (tmp_path / "o" / "one_preview.jpg").exists()


def test_infer_video(tmp_path, ours_safetensors):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 64))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for i in range(3):
        writer.write(road_scene(160, 64, seed=i)[..., ::-1].copy())
    writer.release()
    assert main(["infer", "--model", ours_safetensors, "--input", str(video), "--output", str(tmp_path / "v"),
                 *FAST]) == 0
    assert sorted(p.name for p in (tmp_path / "v").glob("*_labels.png")) == [
        f"clip_{i:06d}_labels.png" for i in range(3)]


def test_infer_errors_are_clear(tmp_path, ours_safetensors, capsys):
    assert main(["infer", "--model", ours_safetensors, "--input", str(tmp_path / "nope"),
                 "--output", str(tmp_path / "o"), *FAST]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["infer", "--model", str(tmp_path / "missing.pth"), "--input", str(tmp_path),
                 "--output", str(tmp_path / "o")]) == 1
    assert "checkpoint file not found" in capsys.readouterr().err
    assert main(["infer", "--model", ours_safetensors, "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                 "--backend", "torch", "--width", "100", "--height", "64"]) == 1
    assert "multiples of 32" in capsys.readouterr().err


def test_convert_reference_checkpoint(tmp_path, reference_pth, capsys):
    out = tmp_path / "conv.safetensors"
    assert main(["convert", reference_pth, "-o", str(out), "--fp16", "--scale-factor", "5.2",
                 "--name", "SGDepth full"]) == 0
    from sgdepth_ros.model import load_checkpoint
    m = load_checkpoint(out)
    assert m.pose is None and m.metadata["scale"]["factor"] == 5.2 and m.metadata["dtype"] == "float16"
    assert m.metadata["provenance"]["name"] == "SGDepth full"
    assert len(m.metadata["provenance"]["sha256"]) == 64
    assert out.stat().st_size < 35e6
    assert main(["convert", reference_pth, "-o", str(out), "--scale-factor", "-1"]) == 2


def test_demo_replays_a_synthetic_drive_bag_live_through_the_node(tmp_path):
    """The README's main job, as a user runs it: its own process, the node as another, DDS between them."""
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "sgdepth_ros.cli", "demo", "--output", str(out), "--frames", "6",
                           "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "UNTRAINED" not in done.stdout and "synthetic world only" in done.stdout
    assert "replay (live)" in done.stdout and "AbsRel" in done.stdout
    report = json.loads((out / "replay" / "report.json").read_text())
    # what the design guarantees, whatever the machine's load: every frame sent is delivered or counted dropped,
    # the newest frame is always delivered, and the delivered frames are scored (each frame of this drive scores
    # AbsRel ≈ 0.17–0.22 and mIoU ≈ 0.46–0.50 offline); how many a busy machine drops is bench-replay's business
    frames = report["frames"]
    assert report["mode"] == "live" and frames["sent"] == 6 and frames["delivered"] + frames["dropped"] == 6
    assert frames["delivered"] >= 1 and report["depth"]["frames"] == frames["delivered"]
    assert report["depth"]["median"]["metrics"]["abs_rel"] < 0.4  # the trained default model, not noise
    assert report["segmentation"]["miou"] > 0.3
    assert (out / "replay" / "preview.png").is_file() and Path(report["outputs"]["bag"]).is_dir()


def test_demo_without_the_default_file_says_it_ran_untrained_weights(tmp_path, capsys, monkeypatch):
    import sgdepth_ros.default_model as default_model

    monkeypatch.setattr(default_model, "DEFAULT_MODEL_FILE", tmp_path / "absent.safetensors")
    assert main(["demo", "--output", str(tmp_path / "demo"), "--frames", "3", "--device", "cpu",
                 "--mode", "offline"]) == 0
    assert "UNTRAINED" in capsys.readouterr().out
    assert (tmp_path / "demo" / "replay" / "report.md").is_file()
    assert main(["demo", "--output", str(tmp_path / "demo"), "--frames", "1"]) == 2


def test_console_script_help_lists_subcommands():
    exe = Path(sys.executable).with_name("sgdepth-ros")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sgdepth_ros.cli"]
    out = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=60, env={**os.environ})
    assert out.returncode == 0
    for sub in ("infer", "convert", "demo", "bench"):
        assert sub in out.stdout
