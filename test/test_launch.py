"""launch/sgdepth.launch.py and config/sgdepth.rviz, checked as far as possible without launch/launch_ros
(no wheels exist): the file runs against recording stand-ins of the launch API, and everything it
names exists in the package."""
from __future__ import annotations

import ast
import importlib.util
import re
import sys
import types
from pathlib import Path

import yaml
from launch_stand_ins import Recorded, walk

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "sgdepth.launch.py"
LAUNCH_API = {
    "launch": ["LaunchDescription"],
    "launch.actions": ["DeclareLaunchArgument", "SetEnvironmentVariable"],
    "launch.conditions": ["IfCondition"],
    "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution", "PythonExpression"],
    "launch_ros.actions": ["LifecycleNode", "Node"],
    "launch_ros.substitutions": ["FindPackageShare"],
}


def _load_with_stand_ins(monkeypatch):
    for module_name, names in LAUNCH_API.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, type(name, (Recorded,), {}))
        monkeypatch.setitem(sys.modules, module_name, module)
    spec = importlib.util.spec_from_file_location("sgdepth_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _strings(value) -> list[str]:
    """Every literal string inside a recorded substitution tree."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, Recorded):
        return _strings(list(value.args)) + _strings(value.kwargs)
    return []


def test_launch_imports_only_the_launch_api_it_declares():
    tree = ast.parse(LAUNCH.read_text())
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert imported == {(m, name) for m, names in LAUNCH_API.items() for name in names}


def test_launch_description_starts_the_node_with_its_arguments(monkeypatch):
    description = _load_with_stand_ins(monkeypatch).generate_launch_description()
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    assert {"namespace", "image", "camera_info", "model_path", "device", "params_file", "use_sim_time", "rviz",
            "camera_frame", "large_images"} <= set(declared)
    assert declared["rviz"] == "false" and declared["use_sim_time"] == "false"
    used = {e.args[0] for e in walk(entities) if type(e).__name__ == "LaunchConfiguration"}
    assert used <= set(declared), f"undeclared launch arguments used: {used - set(declared)}"

    node = next(e for e in entities if type(e).__name__ == "LifecycleNode")
    assert node.kwargs["package"] == "sgdepth_ros" and node.kwargs["executable"] == "sgdepth_node"
    assert {r[0] for r in node.kwargs["remappings"]} == {"image", "image/compressed", "camera_info"}
    overrides = node.kwargs["parameters"][1]
    from sgdepth_ros.ros.params import PARAMS_BY_NAME
    assert set(overrides) - {"use_sim_time"} <= set(PARAMS_BY_NAME)
    share_files = {s for e in entities for s in _strings(e) if re.fullmatch(r"[\w.]+\.(yaml|rviz|xml)", s)}
    assert share_files == {"sgdepth.yaml", "sgdepth.rviz", "fastdds_large_images.xml"}
    for name in share_files:
        assert (ROOT / "config" / name).is_file(), name
    rviz = next(e for e in entities if type(e).__name__ == "Node")
    assert rviz.kwargs["executable"] == "rviz2" and "-f" in rviz.kwargs["arguments"]


def test_executables_named_by_the_launch_file_are_installed():
    setup = (ROOT / "setup.py").read_text()
    assert '"sgdepth_node = sgdepth_ros.ros.node:console_main"' in setup
    assert 'glob("launch/*.py")' in setup and 'glob("config/*")' in setup


def test_rviz_config_shows_the_node_outputs():
    config = yaml.safe_load((ROOT / "config" / "sgdepth.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays if "Topic" in d}
    assert {"/camera/image_raw", "/sgdepth/depth/color", "/sgdepth/semantic/overlay", "/sgdepth/points",
            "/sgdepth/points/relative"} <= topics
    classes = {d["Class"] for d in displays}
    assert {"rviz_default_plugins/Image", "rviz_default_plugins/PointCloud2"} <= classes
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"]
