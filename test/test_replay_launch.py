"""launch/replay.launch.py, checked without launch/launch_ros (no wheels exist): the file runs against recording
stand-ins of the launch API, and a small resolver evaluates its substitutions and conditions for given arguments."""
from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest
from launch_stand_ins import Recorded, walk

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_DIR = ROOT / "launch"
REPLAY = LAUNCH_DIR / "replay.launch.py"
REPLAY_API = {
    "launch": ["LaunchDescription"],
    "launch.actions": ["DeclareLaunchArgument", "ExecuteProcess", "IncludeLaunchDescription", "TimerAction"],
    "launch.conditions": ["IfCondition", "UnlessCondition"],
    "launch.launch_description_sources": ["PythonLaunchDescriptionSource"],
    "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution", "PythonExpression"],
    "launch_ros.substitutions": ["FindPackageShare"],
}
# what sgdepth.launch.py imports, so that its ARGUMENTS can be read against the same stand-ins
NODE_LAUNCH_API = {
    "launch.actions": ["SetEnvironmentVariable"],
    "launch_ros.actions": ["LifecycleNode", "Node"],
}
SHARE = "/opt/ros/share/sgdepth_ros"


def _load(monkeypatch, path: Path):
    for api in (REPLAY_API, NODE_LAUNCH_API):
        for module_name, names in api.items():
            module = sys.modules.get(module_name)
            if not isinstance(module, types.ModuleType) or not getattr(module, "__stand_in__", False):
                module = types.ModuleType(module_name)
                module.__stand_in__ = True
                monkeypatch.setitem(sys.modules, module_name, module)
            for name in names:
                setattr(module, name, type(name, (Recorded,), {}))
    spec = importlib.util.spec_from_file_location(path.name.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _resolve(value, args: dict[str, str]) -> str:
    """A substitution (tree) as launch would perform it with the launch arguments ``args``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "".join(_resolve(v, args) for v in value)
    kind = type(value).__name__
    if kind == "LaunchConfiguration":
        return args[value.args[0]]
    if kind == "PythonExpression":
        return str(eval(_resolve(value.args[0], args)))
    if kind == "PathJoinSubstitution":
        return "/".join(_resolve(v, args) for v in value.args[0])
    if kind == "FindPackageShare":
        return SHARE
    raise AssertionError(f"unexpected substitution {kind}")


def _holds(condition, args: dict[str, str]) -> bool:
    if condition is None:
        return True
    truth = _resolve(condition.args[0], args).lower() in ("true", "1")
    return truth if type(condition).__name__ == "IfCondition" else not truth


@pytest.fixture
def replay(monkeypatch):
    module = _load(monkeypatch, REPLAY)
    entities = module.generate_launch_description().args[0]
    declared = {e.args[0]: e for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    defaults = {name: e.kwargs["default_value"] for name, e in declared.items() if "default_value" in e.kwargs}
    return types.SimpleNamespace(module=module, entities=entities, declared=declared, defaults=defaults)


def _args(replay, **given) -> dict[str, str]:
    return {**replay.defaults, "bag": "/data/run1", **given}


def _processes(replay, args):
    """The command lines of the ExecuteProcess actions that would run with ``args`` (timers unwrapped)."""
    running = []
    for entity in replay.entities:
        inner = entity.kwargs["actions"] if type(entity).__name__ == "TimerAction" else [entity]
        for action in inner:
            if type(action).__name__ == "ExecuteProcess" and _holds(action.kwargs.get("condition"), args):
                running.append([_resolve(part, args) for part in action.kwargs["cmd"]])
    return running


def test_replay_imports_only_the_launch_api_it_declares():
    tree = ast.parse(REPLAY.read_text())
    imported = {(n.module, a.name) for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module.split(".")[0] in ("launch", "launch_ros")
                for a in n.names}
    assert imported == {(m, name) for m, names in REPLAY_API.items() for name in names}
    assert ast.get_docstring(tree) and "ros2 launch sgdepth_ros replay.launch.py bag:=" in ast.get_docstring(tree)


def test_declares_exactly_the_arguments_it_uses(replay):
    assert set(replay.declared) == {"bag", "rate", "model_path", "image", "camera_info", "namespace", "rviz", "loop",
                                    "record", "start_delay"}
    used = {e.args[0] for e in walk(replay.entities) if type(e).__name__ == "LaunchConfiguration"}
    assert used == set(replay.declared)
    assert "default_value" not in replay.declared["bag"].kwargs, "bag must be required"
    assert replay.defaults == {"rate": "1.0", "model_path": "", "image": "/camera/image_raw",
                               "camera_info": "/camera/camera_info", "namespace": "sgdepth", "rviz": "true",
                               "loop": "false", "record": "", "start_delay": "3.0"}
    assert all(e.kwargs.get("description") for e in replay.declared.values())


def test_plays_the_bag_with_clock_and_rate_after_the_start_delay(replay):
    timer = next(e for e in replay.entities if type(e).__name__ == "TimerAction")
    assert _resolve(timer.kwargs["period"], _args(replay, start_delay="5")) == "5"
    assert _processes(replay, _args(replay, rate="0.5")) == [
        ["ros2", "bag", "play", "/data/run1", "--clock", "--rate", "0.5"]]
    assert _processes(replay, _args(replay, loop="true")) == [
        ["ros2", "bag", "play", "/data/run1", "--clock", "--rate", "1.0", "--loop"]]
    assert all(type(e).__name__ != "ExecuteProcess" or "play" not in e.kwargs["cmd"] for e in replay.entities), \
        "bag play must wait in the TimerAction"


def test_includes_the_node_launch_with_sim_time(replay, monkeypatch):
    include = next(e for e in replay.entities if type(e).__name__ == "IncludeLaunchDescription")
    source = include.args[0]
    assert type(source).__name__ == "PythonLaunchDescriptionSource"
    assert _resolve(source.args[0], {}) == f"{SHARE}/launch/sgdepth.launch.py"
    passed = dict(include.kwargs["launch_arguments"])
    assert set(passed) == {"image", "camera_info", "model_path", "namespace", "rviz", "use_sim_time"}
    args = _args(replay, image="/cam/left", namespace="depth_ns", rviz="false")
    assert passed["use_sim_time"] == "true"
    assert {k: _resolve(v, args) for k, v in passed.items() if k != "model_path"} == {
        "image": "/cam/left", "camera_info": "/camera/camera_info", "namespace": "depth_ns", "rviz": "false",
        "use_sim_time": "true"}
    # every argument passed is one that sgdepth.launch.py declares
    node_launch = _load(monkeypatch, LAUNCH_DIR / "sgdepth.launch.py")
    assert set(passed) <= {name for name, _, _ in node_launch.ARGUMENTS}


def test_model_path_defaults_to_the_shipped_checkpoint(replay):
    include = next(e for e in replay.entities if type(e).__name__ == "IncludeLaunchDescription")
    model_path = dict(include.kwargs["launch_arguments"])["model_path"]
    shipped = ROOT / "sgdepth_ros" / "models" / "sgdepth_synthetic_320x96_fp16.safetensors"
    assert replay.module.shipped_model() == (str(shipped) if shipped.is_file() else "")
    assert _resolve(model_path, _args(replay)) == replay.module.shipped_model()
    assert _resolve(model_path, _args(replay, model_path="/m/model.pth")) == "/m/model.pth"


def test_records_only_when_asked(replay):
    recorder = next(e for e in replay.entities
                    if type(e).__name__ == "ExecuteProcess" and "record" in e.kwargs["cmd"])
    condition = recorder.kwargs["condition"]
    assert type(condition).__name__ == "IfCondition"
    assert not _holds(condition, _args(replay))
    assert _holds(condition, _args(replay, record="/tmp/out"))
    assert [p for p in _processes(replay, _args(replay)) if "record" in p] == []

    command = next(p for p in _processes(replay, _args(replay, record="/tmp/out")) if "record" in p)
    assert command[:7] == ["ros2", "bag", "record", "-s", "mcap", "-o", "/tmp/out"]
    topics = command[7:]
    assert {"/sgdepth/depth/relative", "/sgdepth/depth/color", "/sgdepth/semantic/overlay",
            "/sgdepth/points", "/camera/image_raw", "/camera/camera_info"} <= set(topics)
    for namespace in ("/vision/", "vision"):
        again = next(p for p in _processes(replay, _args(replay, record="/tmp/out", namespace=namespace))
                     if "record" in p)
        assert "/vision/semantic/labels" in again and "/sgdepth/semantic/labels" not in again


def test_recorded_outputs_are_the_node_outputs(replay):
    messages = pytest.importorskip("sgdepth_ros.ros.messages")  # needs the ROS message wheels
    node_topics = {topic for metric in (True, False) for topic, _ in messages.output_topics(metric).values()}
    assert set(replay.module.OUTPUT_TOPICS) == node_topics | {"semantic/labels"}


def test_every_referenced_launch_file_exists(replay):
    names = {s for e in walk(replay.entities) for s in e.args + tuple(e.kwargs.values())
             if isinstance(s, str) and s.endswith(".launch.py")}
    names |= {s for e in walk(replay.entities) if type(e).__name__ == "PathJoinSubstitution"
              for s in e.args[0] if isinstance(s, str) and s.endswith(".launch.py")}
    assert names == {"sgdepth.launch.py"}
    for name in names:
        assert (LAUNCH_DIR / name).is_file(), name
