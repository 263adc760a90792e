"""Lazy work: only the decoder tails of the wanted tasks run (predictor, both backends, and the node's per-frame choice)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sgdepth_ros import Predictor

SMALL = (128, 64)  # network input (width, height) that keeps the tests fast
TASK_SETS = [("depth",), ("segmentation",), ("depth", "segmentation")]


def _count_tail_calls(model) -> dict[str, int]:
    """Forward hooks on the two decoder tails → live call counters."""
    calls = {"depth": 0, "segmentation": 0}

    def counter(task):
        def hook(module, inputs, output):
            calls[task] += 1
        return hook

    model.depth.register_forward_hook(counter("depth"))
    model.seg.register_forward_hook(counter("segmentation"))
    return calls


@pytest.fixture(scope="module")
def torch_predictor(ours_safetensors):
    return Predictor(ours_safetensors, device="cpu", backend="torch", input_size=SMALL)


def test_torch_runs_only_the_asked_tails_and_gives_the_same_numbers(torch_predictor, rgb):
    calls = _count_tail_calls(torch_predictor.backend.model)
    both = torch_predictor.predict(rgb)
    assert calls == {"depth": 1, "segmentation": 1}

    depth_only = torch_predictor.predict(rgb, tasks=("depth",))
    assert calls == {"depth": 2, "segmentation": 1}  # the segmentation decoder was not called
    assert depth_only.labels is None
    assert np.array_equal(depth_only.depth, both.depth) and np.array_equal(depth_only.disparity, both.disparity)

    seg_only = torch_predictor.predict(rgb, tasks=("segmentation",))
    assert calls == {"depth": 2, "segmentation": 2}  # the depth decoder was not called
    assert seg_only.depth is None and seg_only.disparity is None
    assert np.array_equal(seg_only.labels, both.labels)
    # output size and image follow the same rules whatever ran
    assert seg_only.labels.shape == depth_only.depth.shape == (SMALL[1], SMALL[0])
    assert np.array_equal(seg_only.image, both.image)


def test_per_call_tasks_override_the_constructor_default(ours_safetensors, rgb):
    p = Predictor(ours_safetensors, device="cpu", backend="torch", input_size=SMALL, tasks=("depth",))
    assert p.predict(rgb).labels is None
    assert p.predict(rgb, tasks=("depth", "segmentation")).labels is not None
    with pytest.raises(ValueError, match="tasks"):
        p.predict(rgb, tasks=())
    with pytest.raises(ValueError, match="tasks"):
        p.predict(rgb, tasks=("normals",))


def test_openvino_compiles_each_task_set_once_and_matches_both(ours_safetensors, torch_predictor, rgb, monkeypatch):
    pytest.importorskip("openvino")
    ov = Predictor(ours_safetensors, device="cpu", backend="openvino", input_size=SMALL)
    converted = []
    real_convert = ov.backend.graph
    monkeypatch.setattr(ov.backend, "graph", lambda tasks: converted.append(tasks) or real_convert(tasks))
    assert list(ov.backend._compiled) == [("depth", "segmentation")]  # the default set compiles at start
    both = ov.predict(rgb)
    results = {}
    for _ in range(2):  # the second round finds every graph compiled
        for tasks in TASK_SETS:
            results[tasks] = ov.predict(rgb, tasks=tasks)
    assert converted == [("depth",), ("segmentation",)]  # lazily, once each
    assert set(ov.backend._compiled) == set(TASK_SETS)
    compiled_depth, _ = ov.backend.compiled(("depth",))
    compiled_seg, _ = ov.backend.compiled(("segmentation",))
    assert len(compiled_depth.outputs) == len(compiled_seg.outputs) == 1  # one tail each in the graph
    assert results[("depth",)].labels is None and results[("segmentation",)].depth is None
    assert np.abs(results[("depth",)].disparity - both.disparity).max() < 1e-5
    assert np.array_equal(results[("segmentation",)].labels, both.labels)
    reference = torch_predictor.predict(rgb)
    assert np.abs(results[("depth",)].disparity - reference.disparity).max() < 1e-4


_NODE_SCRIPT = r"""
import json, sys
import numpy as np
import rclpy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from sgdepth_ros.predictor import Predictor
from sgdepth_ros.ros import node as node_module
from sgdepth_ros.ros.camera_channel import Frame
from sgdepth_ros.ros.camera_ports import CameraPorts

checkpoint = sys.argv[1]
rclpy.init()
node = node_module.SGDepthNode(parameter_overrides=[])
predictor = Predictor(checkpoint, device="cpu", backend="torch", input_size=(128, 64))
calls = {"depth": 0, "segmentation": 0}
predictor.backend.model.depth.register_forward_hook(lambda m, i, o: calls.__setitem__("depth", calls["depth"] + 1))
predictor.backend.model.seg.register_forward_hook(
    lambda m, i, o: calls.__setitem__("segmentation", calls["segmentation"] + 1))
node.predictor = predictor

class Pub:  # a publisher with a subscriber
    def __init__(self): self.sent = []
    def get_subscription_count(self): return 1
    def publish(self, msg): self.sent.append(msg)

rgb = np.random.default_rng(0).integers(0, 255, (32, 64, 3), dtype=np.uint8)
msg = Image(header=Header(frame_id="cam"), height=32, width=64, encoding="rgb8", is_bigendian=0, step=64 * 3)
msg.data = rgb.tobytes()
msg.header.stamp.sec = 1
report = []
for wanted in (["depth"], ["depth_color"], ["semantic"], ["overlay", "semantic_color"], ["depth", "semantic"]):
    ports = object.__new__(CameraPorts)  # the camera's endpoints, without DDS
    ports.pubs, ports.relative_pubs = {key: Pub() for key in wanted}, {}
    node._ports[""] = ports
    before = dict(calls)
    node._process([("", Frame(msg, 10 ** 9))])
    published = sorted(k for k, p in ports.pubs.items() if p.sent)
    report.append({"wanted": wanted, "depth": calls["depth"] - before["depth"],
                   "segmentation": calls["segmentation"] - before["segmentation"], "published": published})
node.destroy_node()
rclpy.try_shutdown()
print("REPORT " + json.dumps(report))
"""


def test_the_node_runs_only_the_tails_its_subscribers_need(tmp_path, ours_safetensors):
    """The node's worker asks the predictor for the tasks of the wanted outputs only (a real SGDepthNode and
    Predictor in a child process, publishers stubbed with one subscriber each)."""
    from sgdepth_ros.ros.launcher import ros_environment

    done = subprocess.run([sys.executable, "-c", _NODE_SCRIPT, ours_safetensors], capture_output=True, text=True,
                          timeout=300, env=ros_environment(large_images=False))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("REPORT "))[len("REPORT "):])
    ran = {tuple(r["wanted"]): (r["depth"], r["segmentation"]) for r in report}
    assert ran == {("depth",): (1, 0), ("depth_color",): (1, 0), ("semantic",): (0, 1),
                   ("overlay", "semantic_color"): (0, 1), ("depth", "semantic"): (1, 1)}
    assert all(r["published"] == sorted(r["wanted"]) for r in report), report


def test_output_to_task_mapping():
    from sgdepth_ros.ros.output_tasks import tasks_for_outputs
    from sgdepth_ros.ros.outputs import OUTPUT_KEYS

    assert tasks_for_outputs({"depth", "depth_info", "depth_color"}) == ("depth",)
    assert tasks_for_outputs({"semantic", "semantic_color", "overlay"}) == ("segmentation",)
    assert tasks_for_outputs({"points"}) == ("depth", "segmentation")  # the cloud carries a label per point
    assert tasks_for_outputs(set(OUTPUT_KEYS)) == ("depth", "segmentation")
