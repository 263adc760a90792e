"""Shared fixtures: small generated checkpoints and images (nothing is downloaded)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sgdepth_ros.model import SGDepth, save_checkpoint


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep converted OpenVINO graphs out of the user's cache."""
    import os
    os.environ["SGDEPTH_ROS_CACHE"] = str(tmp_path_factory.mktemp("cache"))


def randomized_model(seed: int = 0, **kwargs) -> SGDepth:
    """An SGDepth with random weights and non-trivial BN statistics, in eval mode."""
    torch.manual_seed(seed)
    model = SGDepth(**kwargs)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="session")
def model() -> SGDepth:
    return randomized_model()


@pytest.fixture(scope="session")
def reference_pth(tmp_path_factory, model) -> str:
    """A full state_dict saved like the released model.pth (legacy, non-zip torch serialisation)."""
    path = tmp_path_factory.mktemp("ref") / "model.pth"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    return str(path)


@pytest.fixture(scope="session")
def ours_safetensors(tmp_path_factory, model) -> str:
    path = tmp_path_factory.mktemp("ours") / "model.safetensors"
    save_checkpoint(model, path, {"provenance": {"source": "test fixture"}})
    return str(path)


@pytest.fixture
def rgb() -> np.ndarray:
    from sgdepth_ros.samples import road_scene
    return road_scene(300, 100, seed=3)


@pytest.fixture
def replay_here(capsys):
    """``sgdepth-ros replay ARGS…`` in this process, for the command's refusals: → a CompletedProcess (exit code,
    stdout, stderr) like running it, without an interpreter start per case."""
    import subprocess

    from sgdepth_ros.cli import main as cli

    def run(*args) -> subprocess.CompletedProcess:
        argv = ["replay", *map(str, args)]
        code = cli(argv)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out.out, out.err)

    return run


@pytest.fixture(scope="module")
def drive_bag(tmp_path_factory):
    """The replay tests' rendered drive bag (replay_runner.render_drive_bag), once per module that asks for it."""
    from replay_runner import render_drive_bag

    return render_drive_bag(tmp_path_factory.mktemp("synth"))
