"""scripts/gpu_default_model.sh (stage 3 of the default model) end to end on the CPU with a tiny budget: the two
training phases chained through an export that keeps the pose network, the final fp16 export with scale, test-drive
accuracy and mIoU, and END_BY stopping what no longer fits. The shipped model is the starting point, as in the real
run; only the data and the step counts are small."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sgdepth_ros.default_model import default_model_path
from sgdepth_ros.model.checkpoint import file_sha256, read_metadata
from sgdepth_training.synth.generate import SynthConfig, generate

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_default_model.sh"

pytestmark = pytest.mark.skipif(default_model_path() is None, reason="checkout without the shipped model")


def _run(work: Path, **env: str) -> subprocess.CompletedProcess:
    settings = {**os.environ, "SGDEPTH_PYTHON": sys.executable, "DEVICE": "cpu", "AMP": "off", "STEPS_A": "2",
                "STEPS_B": "1", "STEPS_PER_EPOCH": "1", "WORKERS": "0", "STAGES": "a,b,export", **env}
    return subprocess.run(["bash", str(SCRIPT), str(work)], capture_output=True, text=True, timeout=900,
                          env=settings, cwd=work)


@pytest.fixture(scope="module")
def stage3(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A work folder with the script's data layout (4 drives × 14 frames at 320×96: drives 1-2 train, 3 val, 4 test)
    and the script's run on it."""
    work = tmp_path_factory.mktemp("stage3")
    generate(SynthConfig(work / "data" / "synth20", drives=4, frames=14, seed=7, formats=("kitti", "cityscapes"),
                         width=320, height=96, cityscapes_width=512, cityscapes_height=256,
                         cityscapes_every=2, workers=1),
             progress=False)
    # END_BY an hour away: both phases run under `train --max-seconds` with the budget it leaves
    return work, _run(work, TRAIN_SETTINGS="photometric_resolution=native smoothness=0.002", POSE_WARMUP_STEPS="1",
                      END_BY=str(int(time.time()) + 3600))


def test_the_phases_chain_from_the_shipped_model_to_an_fp16_file_with_scale_and_accuracy(stage3):
    work, done = stage3
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    meta = read_metadata(work / "default_gpu.safetensors")
    phase_b = meta["provenance"]
    assert phase_b["run"] == "gpu_b" and phase_b["global_step"] == 1 and phase_b["depth_batch"] == 12
    phase_a = phase_b["init_weights"]
    assert phase_a["file"] == "gpu_a.safetensors" and phase_a["sha256"] == file_sha256(work / "gpu_a.safetensors")
    assert phase_a["provenance"]["run"] == "gpu_a" and phase_a["provenance"]["global_step"] == 2
    start = phase_a["provenance"]["init_weights"]
    assert start["sha256"] == file_sha256(default_model_path())  # stage 3 starts from the given file
    pose = read_metadata(work / "gpu_a.safetensors")["architecture"]["pose_layers"]
    assert pose == 18  # phase b starts with a pose network
    assert "pose network too" in done.stderr + done.stdout
    assert meta["architecture"]["pose_layers"] is None and meta["input_size"] == {"width": 320, "height": 96}
    assert meta["scale"]["factor"] > 0 and meta["accuracy"]["test"]["images"] > 0
    assert 0 < meta["accuracy"]["segmentation"]["miou"] <= 1
    config = json.loads((work / "runs" / "gpu_b" / "config.json").read_text())
    assert config["lr"] == 1e-5 and not config["masking"] and config["width"] == 320
    budgets = [int(line.split("at most ")[1].split("s")[0]) for line in done.stdout.splitlines() if "at most" in line]
    assert len(budgets) == 2 and 3600 - 150 - 300 < budgets[0] <= 3600 - 150 and budgets[1] <= 3600 - 60
    for phase in ("gpu_a", "gpu_b"):  # TRAIN_SETTINGS reach both phases
        config = json.loads((work / "runs" / phase / "config.json").read_text())
        assert (config["photometric_resolution"], config["smoothness"]) == ("native", 0.002)
        assert config["pose_warmup_steps"] == (1 if phase == "gpu_a" else 0)  # POSE_WARMUP_STEPS: phase a only


def test_end_by_skips_the_phases_that_no_longer_fit_and_keeps_the_runs(stage3):
    work, first = stage3
    assert first.returncode == 0
    model = work / "default_gpu.safetensors"
    before = file_sha256(model)
    done = _run(work, STAGES="a,b", END_BY=str(int(time.time()) + 60))  # less than phase a's 150 s reserve
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("skipping") == 2 and f"{work}/runs/gpu_a" in done.stdout
    assert file_sha256(model) == before  # the export stage was not asked for
    assert "wrote" not in done.stderr + done.stdout  # nor was phase a's file written again: its run did not change
    assert (work / "runs" / "gpu_b" / "checkpoints" / "last.pt").is_file()


def test_a_python_without_the_dependencies_or_a_missing_work_folder_is_refused_with_a_clear_line(tmp_path):
    """Bad input to the GPU-machine scripts: exit 2 naming what the Python lacks, or the usage line; nothing made."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)  # no torch, no numpy
    for script in (SCRIPT, ROOT / "scripts" / "gpu_check.sh"):
        done = subprocess.run(["bash", str(script), str(tmp_path / "work")], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "SGDEPTH_PYTHON": str(bare / "bin" / "python")})
        assert done.returncode == 2, done.stdout + done.stderr
        assert "lacks torch, torchvision, numpy" in done.stderr and "SGDEPTH_PYTHON" in done.stderr
    assert not (tmp_path / "work").exists()
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SGDEPTH_PYTHON": sys.executable})
    assert done.returncode != 0 and "usage: gpu_default_model.sh WORK_DIR [MODEL_OUT]" in done.stderr
