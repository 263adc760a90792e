"""The photometric-basin diagnosis (evaluation/photometric_basin.py): the loss profile around the true depth on an
analytic scene and on a rendered drive, and its command line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sgdepth_training.evaluation import photometric_basin as pb
from sgdepth_training.synth.generate import SynthConfig, generate


def test_the_truth_minimises_the_error_of_a_sideways_shift():
    """A fronto-parallel textured plane 4 m away seen by a camera 1 m to the right: 16 px of image motion. The true
    depth warps it exactly; every other factor leaves an error."""
    torch.manual_seed(0)
    H, W, shift = 32, 128, 16
    texture = torch.nn.functional.avg_pool2d(torch.rand(1, 3, H, W + shift), 3, 1, 1)
    target, source = texture[..., :W], texture[..., shift:]
    K = torch.eye(4)[None].clone()
    K[0, 0, 0] = K[0, 1, 1] = 64.0
    K[0, 0, 2], K[0, 1, 2] = 63.5, 15.5
    T = torch.eye(4)[None].clone()
    T[0, 0, 3] = -1.0
    errors, identity = pb.error_profile(target, [source], [T], torch.full((1, 1, H, W), 4.0), K)
    inside = (slice(1, -1), slice(shift + 1, -1))
    means = {f: float(e[inside].mean()) for f, e in errors.items()}
    assert means[1.0] < 1e-3 and all(m > 10 * means[1.0] for f, m in means.items() if f != 1.0), means
    assert float(identity[inside].mean()) > 10 * means[1.0]
    group = pb.Group()
    mask = np.zeros((H, W), bool)
    mask[inside] = True
    group.add({f: e.numpy() for f, e in errors.items()}, identity.numpy(), mask)
    summary = group.summary()
    assert summary["pixels"] == mask.sum() and summary["identity"] == 0.0 and 0.0 < summary["basin"] <= 1.0


@pytest.fixture(scope="module")
def drive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("basin") / "synth"
    generate(SynthConfig(out, drives=1, frames=5, seed=7, formats=("kitti",), width=256, height=96, workers=1),
             progress=False)
    return out / "kitti"


def test_a_rendered_static_scene_is_explained_by_its_true_depth(drive, capsys):
    folder = next(p for p in drive.glob("*/*_sync")).relative_to(drive).as_posix()
    profile = pb.drive_profile(drive, folder, 128, 48, every=1)
    scene = [g for (kind, _), g in profile.items() if kind == "scene"]
    assert scene and sum(g["pixels"] for g in scene) > 0.5 * 3 * 128 * 48  # 3 frames with both neighbours
    for g in scene:  # the static world: the loss is lowest at the true depth
        assert g["error"][1.0] == min(g["error"].values()) and g["error"][1.0] < 0.75 * g["error"][1000.0], g
        assert 0.0 <= g["basin"] <= 1.0 and 0.0 <= g["identity"] <= 1.0
    assert pb.main(["--data", str(drive), "--folder", folder, "--sizes", "64x24", "--every", "3"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| size | pixels of |") and "| 64×24 | scene |" in table


def test_other_source_frames_change_which_frames_are_profiled(drive, capsys):
    """Five frames: t±1 profiles frames 1-3, t±2 frame 2 alone, the previous frame alone frames 1-4; on the static
    world each still has its lowest error at the true depth."""
    folder = next(p for p in drive.glob("*/*_sync")).relative_to(drive).as_posix()
    pixels = {}
    for sources in ((-1, 1), (-2, 2), (-1,)):
        profile = pb.drive_profile(drive, folder, 128, 48, every=1, sources=sources)
        pixels[sources] = sum(g["pixels"] for g in profile.values())
        for (kind, _), g in profile.items():
            if kind == "scene":
                assert g["error"][1.0] == min(g["error"].values()), (sources, g)
    frame = pixels[(-2, 2)]  # pixels with valid depth in frame 2
    assert 0 < frame <= 128 * 48 and frame < pixels[(-1, 1)] < pixels[(-1,)]
    assert pb.main(["--data", str(drive), "--folder", folder, "--sizes", "64x24", "--sources=-2,2"]) == 0
    assert "| 64×24 | scene |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="non-zero frame offsets"):
        pb.drive_profile(drive, folder, 64, 24, sources=(0, 1))


def test_selected_actors_are_pooled_apart(drive, capsys):
    """--select moves an actor's pixels out of its kind into 'selected actors'; the totals stay the same."""
    import json

    folder = next(p for p in drive.glob("*/*_sync")).relative_to(drive).as_posix()
    plain = pb.drive_profile(drive, folder, 128, 48, every=1)
    ids = [int(o["id"]) for o in json.loads((drive / folder / "synthetic" / "objects.json").read_text())["objects"]]
    apart = pb.drive_profile(drive, folder, 128, 48, every=1, selected=frozenset(ids))
    assert sum(g["pixels"] for g in apart.values()) == sum(g["pixels"] for g in plain.values())
    assert sum(g["pixels"] for (kind, _), g in apart.items() if kind == pb.SELECTED) == \
        sum(g["pixels"] for (kind, _), g in plain.items() if kind != "scene") > 0  # every actor selected
    assert all(kind in (pb.SELECTED, "scene") for kind, _ in apart)
    assert pb.main(["--data", str(drive), "--folder", folder, "--sizes", "64x24", "--select", str(ids[0])]) == 0
    assert "| selected actors |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no actor with id 99999 in synthetic/objects.json"):
        pb.drive_profile(drive, folder, 64, 24, selected=frozenset({99999}))


def test_bad_arguments_are_refused_with_the_valid_form(drive, capsys):
    with pytest.raises(SystemExit) as exit_:
        pb.main(["--data", str(drive), "--folder", "x", "--sizes", "320x"])
    refused = "size must be WIDTHxHEIGHT in pixels, each >= 1 (e.g. 1024x512), got '320x'"
    assert exit_.value.code == 2 and refused in capsys.readouterr().err
    for bad in ("0x96", "320x-2"):  # the shared size type refuses what no image can be
        with pytest.raises(SystemExit):
            pb.main(["--data", str(drive), "--folder", "x", "--sizes", f"320x96,{bad}"])
        assert f"got {bad!r}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pb.main(["--data", str(drive), "--folder", "x", "--every", "0"])
    assert "--every must be ≥ 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pb.main(["--data", str(drive), "--folder", "x", "--select", "a,2"])
    assert "--select must be comma-separated actor ids such as 28,29, got 'a,2'" in capsys.readouterr().err
    for bad in ("0,1", "-1,-1", "a", ""):
        with pytest.raises(SystemExit):
            pb.main(["--data", str(drive), "--folder", "x", f"--sources={bad}"])
        assert f"--sources must be distinct non-zero frame offsets such as -1,1 or -2,2, got {bad!r}" in \
            capsys.readouterr().err
