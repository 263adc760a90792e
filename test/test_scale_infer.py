"""`sgdepth-ros infer --scale-mode camera_height`: metres from the camera's height over the road on a folder of one
rendered synthetic drive (KITTI layout, exact ground truth), the intrinsics from --calib or --intrinsics, and a clear
error for each missing or inconsistent input.

The drive (8 frames, 416×128, camera 1.65 m above the road) is rendered once per module; the model is the shipped
default checkpoint.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sgdepth_ros.cli import main

FRAMES, WIDTH, HEIGHT = 8, 416, 128
FAST = ["--backend", "torch", "--device", "cpu", "--no-preview"]
CAMERA_HEIGHT_M = 1.65


@pytest.fixture(scope="module")
def drive(tmp_path_factory) -> dict:
    from sgdepth_training.synth.generate import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(out=out, drives=1, frames=FRAMES, seed=1, formats=("kitti",), width=WIDTH, height=HEIGHT,
                         workers=1), progress=False)
    date = next(p for p in (out / "kitti").iterdir() if p.name != "splits")
    folder = next(p for p in date.iterdir() if p.is_dir())
    return {"images": folder / "image_02" / "data", "calib": date / "calib_cam_to_cam.txt",
            "gt": folder / "proj_depth" / "groundtruth" / "image_02"}


def gt_scale(drive: dict, name: str, depth_model: np.ndarray) -> float:
    """The ground truth's scale of one image: median of gt / prediction (model units) over pixels with gt < 80 m."""
    gt = cv2.imread(str(drive["gt"] / f"{name}.png"), cv2.IMREAD_UNCHANGED).astype(np.float64) / 256.0
    valid = (gt > 0) & (gt < 80) & np.isfinite(depth_model) & (depth_model > 0)
    return float(np.median(gt[valid] / depth_model[valid]))


def run_infer(drive: dict, out: Path, *camera: str) -> tuple[int, dict]:
    code = main(["infer", "--input", str(drive["images"]), "--output", str(out), "--npy", *FAST,
                 "--scale-mode", "camera_height", "--camera-height", str(CAMERA_HEIGHT_M), *camera])
    return code, json.loads((out / "summary.json").read_text())


def check_scales(drive: dict, out: Path, summary: dict) -> None:
    """Every image has its own estimate; from the filter's 3rd on, metres within 25 % of the ground truth's scale."""
    height = summary["camera_height"]
    images = height["per_image"]
    assert [r["name"] for r in images] == sorted(p.stem for p in drive["images"].iterdir())  # file order
    assert height["images_with_estimate"] == FRAMES
    assert [r["scale"] is None for r in images] == [True, True] + [False] * (FRAMES - 2)  # min_samples = 3
    for r in images:
        depth = np.load(out / f"{r['name']}_depth.npy")
        if r["scale"] is None:
            assert r["depth_units"] == "model units (relative)"
            assert abs(r["estimate"] / gt_scale(drive, r["name"], depth) - 1) < 0.25
            continue
        assert r["depth_units"] == "metres"
        truth = gt_scale(drive, r["name"], depth / r["scale"])
        assert abs(r["scale"] / truth - 1) < 0.25, (r, truth)
        assert abs(r["estimate"] / truth - 1) < 0.25, (r, truth)
    assert height["final_scale"] == images[-1]["scale"]
    assert summary["scale"]["mode"] == "camera_height"


def test_camera_height_with_the_kitti_calibration(drive, tmp_path, capsys):
    code, summary = run_infer(drive, tmp_path, "--calib", str(drive["calib"]))
    assert code == 0, capsys.readouterr().err
    check_scales(drive, tmp_path, summary)
    assert "P_rect_02" in summary["camera_height"]["intrinsics"]
    assert "camera height 1.65 m: an estimate on 8 of 8 image(s), metric depth on 6" in capsys.readouterr().out


def test_camera_height_with_intrinsics_in_pixels(drive, tmp_path):
    from sgdepth_training.data.kitti_calib import camera_intrinsics, read_calib_file

    K, _ = camera_intrinsics(read_calib_file(drive["calib"]))
    code, summary = run_infer(drive, tmp_path, "--intrinsics", f"{K[0, 0]},{K[1, 1]},{K[0, 2]},{K[1, 2]}")
    assert code == 0
    check_scales(drive, tmp_path, summary)
    assert np.allclose(summary["camera_height"]["K"], K)


@pytest.mark.parametrize("args, needles", [
    (["--scale-mode", "camera_height", "--camera-height", "1.65"], ("--intrinsics", "--calib")),
    (["--scale-mode", "camera_height", "--intrinsics", "700,700,200,60"], ("--camera-height",)),
    (["--camera-height", "1.65", "--intrinsics", "700,700,200,60"], ("only with --scale-mode camera_height",)),
    (["--scale-mode", "camera_height", "--camera-height", "1.65", "--intrinsics", "700,700,200"],
     ("fx,fy,cx,cy",)),
    (["--scale-mode", "camera_height", "--camera-height", "1.65", "--intrinsics", "0,700,200,60"],
     ("fx, fy > 0",)),
])
def test_a_missing_or_bad_camera_input_is_a_clear_error(drive, tmp_path, capsys, args, needles):
    code = main(["infer", "--input", str(drive["images"]), "--output", str(tmp_path / "out"), *FAST, *args])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert all(n in err for n in needles), err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_a_missing_calibration_file_is_named(drive, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "calib_cam_to_cam.txt"
    code = main(["infer", "--input", str(drive["images"]), "--output", str(tmp_path / "out"), *FAST,
                 "--scale-mode", "camera_height", "--camera-height", "1.65", "--calib", str(missing)])
    err = capsys.readouterr().err
    assert code == 2 and str(missing) in err and "does not exist" in err


def test_intrinsics_of_another_image_size_fail_each_image_with_the_reason(drive, tmp_path, capsys):
    """A calibration for 1242×375 images on 416×128 ones: every image fails with the sizes named; summary.json is
    written."""
    calib = tmp_path / "calib_cam_to_cam.txt"
    text = drive["calib"].read_text().splitlines()
    calib.write_text("\n".join("S_rect_02: 1.242000e+03 3.750000e+02" if line.startswith("S_rect_02") else line
                               for line in text) + "\n")
    code = main(["infer", "--input", str(drive["images"]), "--output", str(tmp_path / "out"), *FAST,
                 "--scale-mode", "camera_height", "--camera-height", "1.65", "--calib", str(calib)])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 1 and summary["processed"] == 0 and len(summary["failed"]) == FRAMES
    assert all("416x128" in f and "1242x375" in f for f in summary["failed"]), summary["failed"]


def test_a_principal_point_outside_the_image_fails_it(drive, tmp_path):
    """--intrinsics of a bigger image (cx = 600 px on a 416 px wide one) are caught."""
    code = main(["infer", "--input", str(drive["images"]), "--output", str(tmp_path / "out"), *FAST,
                 "--scale-mode", "camera_height", "--camera-height", "1.65", "--intrinsics", "721,721,600,170"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 1 and summary["processed"] == 0
    assert all("outside" in f and "pixels of the input images" in f for f in summary["failed"])
