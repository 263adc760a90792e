"""`sgdepth-ros infer` on hostile inputs: an unreadable checkpoint is one line, one bad image fails alone (its size
checked from the header, MemoryError included) and summary.json is always written; --model defaults to the shipped
model like demo and replay."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from sgdepth_ros.cli import main
from sgdepth_ros.samples import road_scene

FAST = ["--backend", "torch", "--device", "cpu", "--width", "128", "--height", "64"]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png_header(width: int = 20000, height: int = 20000) -> bytes:
    """A small, well-formed PNG start whose header declares width×height RGB8 (the pixels are never all there)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 4)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for i, name in enumerate(("a.png", "c.png", "d.png")):
        cv2.imwrite(str(d / name), road_scene(96, 48, seed=i)[..., ::-1])
    return d


def _one_line_error(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unreadable_checkpoint_is_one_line(tmp_path, folder, ours_safetensors, capsys, monkeypatch):
    """Tests run as root (chmod 000 does not stop reads), so the permission error is raised by the opener."""
    import sgdepth_ros.model.checkpoint as checkpoint

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(checkpoint, "open", denied, raising=False)
    assert main(["infer", "--model", ours_safetensors, "--input", str(folder), "--output", str(tmp_path / "o"),
                 *FAST]) == 1
    _one_line_error(capsys.readouterr().err, ours_safetensors, "cannot read", "Permission denied")


def test_a_folder_as_checkpoint_is_one_line(tmp_path, folder, capsys):
    assert main(["infer", "--model", str(folder), "--input", str(folder), "--output", str(tmp_path / "o"),
                 *FAST]) == 1
    _one_line_error(capsys.readouterr().err, str(folder), "is a folder")


def test_an_oversized_png_fails_alone(tmp_path, folder, ours_safetensors, capsys):
    (folder / "b_huge.png").write_bytes(huge_png_header())
    out = tmp_path / "out"
    assert main(["infer", "--model", ours_safetensors, "--input", str(folder), "--output", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "b_huge.png" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 3 and len(summary["failed"]) == 1 and "b_huge.png" in summary["failed"][0]
    assert "not decoded" in summary["failed"][0]  # refused from its header (imageio.read_rgb), before decoding
    for stem in ("a", "c", "d"):
        assert (out / f"{stem}_depth.png").is_file()


@pytest.mark.parametrize("stage", ["read", "predict"])
def test_memory_error_on_one_file_fails_that_file_only(tmp_path, folder, ours_safetensors, capsys, monkeypatch,
                                                       stage):
    """A decode or inference that runs out of memory is recorded for its file; the rest of the folder continues."""
    import sgdepth_ros.imageio as imageio
    from sgdepth_ros.predictor import Predictor

    if stage == "read":
        real = imageio.read_rgb

        def read_rgb(path, *args, **kwargs):
            if Path(path).name == "c.png":
                raise MemoryError()
            return real(path, *args, **kwargs)
        monkeypatch.setattr(imageio, "read_rgb", read_rgb)
    else:
        real = Predictor.predict
        calls = []

        def predict(self, rgb, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:  # c.png, the second in sorted order
                raise MemoryError("cannot allocate")
            return real(self, rgb, *args, **kwargs)
        monkeypatch.setattr(Predictor, "predict", predict)
    out = tmp_path / "out"
    assert main(["infer", "--model", ours_safetensors, "--input", str(folder), "--output", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "out of memory" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 2 and len(summary["failed"]) == 1
    assert "c" in summary["failed"][0] and "out of memory" in summary["failed"][0]
    assert (out / "a_depth.png").is_file() and (out / "d_depth.png").is_file()


def test_model_defaults_to_the_shipped_one(tmp_path, capsys):
    from sgdepth_ros.default_model import default_model_path

    shipped = default_model_path()
    if shipped is None:
        pytest.skip("this checkout has no default model file")
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), road_scene(160, 48)[..., ::-1])
    out = tmp_path / "o"
    assert main(["infer", "--input", str(image), "--output", str(out), "--backend", "torch", "--device", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == str(shipped)
    assert summary["depth_units"] == "metres"  # the shipped model stores its scale: the scale rule's auto
    assert "synthetic world" in capsys.readouterr().out


def test_without_any_model_infer_says_so(tmp_path, capsys, monkeypatch):
    import sgdepth_ros.default_model as default_model

    monkeypatch.setattr(default_model, "DEFAULT_MODEL_FILE", tmp_path / "absent.safetensors")
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.zeros((32, 64, 3), np.uint8))
    assert main(["infer", "--input", str(image), "--output", str(tmp_path / "o")]) == 2
    assert "no --model given" in capsys.readouterr().err
