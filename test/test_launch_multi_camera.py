"""launch/multi_camera.launch.py, config/multi_camera.yaml and config/multi_camera.rviz, checked without
launch/launch_ros (no wheels exist): the file runs against recording stand-ins of the launch API, its
OpaqueFunction is called with a stand-in launch context, and everything it names exists and is installed."""
from __future__ import annotations

import ast
import importlib.util
import re
import runpy
import sys
import types
from pathlib import Path

import pytest
import setuptools
import yaml
from launch_stand_ins import Recorded, walk

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "multi_camera.launch.py"
RIG_PARAMS = ROOT / "config" / "multi_camera.yaml"
RIG_RVIZ = ROOT / "config" / "multi_camera.rviz"
RIG = ["front", "left", "right", "rear"]
LAUNCH_API = {
    "launch": ["LaunchDescription"],
    "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable"],
    "launch.conditions": ["IfCondition"],
    "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution"],
    "launch_ros.actions": ["LifecycleNode", "Node"],
    "launch_ros.substitutions": ["FindPackageShare"],
}
SUBSTITUTIONS = {"LaunchConfiguration", "PathJoinSubstitution", "FindPackageShare"}


def _resolve(value, args: dict[str, str]) -> str:
    """A substitution (tree) as launch would perform it; the package share is the source tree."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "".join(_resolve(v, args) for v in value)
    kind = type(value).__name__
    if kind == "LaunchConfiguration":
        return args[value.args[0]]
    if kind == "PathJoinSubstitution":
        return "/".join(_resolve(v, args) for v in value.args[0])
    if kind == "FindPackageShare":
        return str(ROOT)
    raise AssertionError(f"unexpected substitution {kind}")


def _stand_in(name: str) -> type:
    body = {}
    if name in SUBSTITUTIONS:  # Substitution.perform(context) → str
        body["perform"] = lambda self, context: _resolve(self, context.launch_configurations)
    return type(name, (Recorded,), body)


class _Arguments(dict):
    """launch_configurations that remember which arguments were read."""

    def __init__(self, values):
        super().__init__(values)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


@pytest.fixture
def rig(monkeypatch):
    for module_name, names in LAUNCH_API.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, _stand_in(name))
        monkeypatch.setitem(sys.modules, module_name, module)
    spec = importlib.util.spec_from_file_location("multi_camera_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entities = module.generate_launch_description().args[0]
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    opaque = next(e for e in entities if type(e).__name__ == "OpaqueFunction")

    def launch(**given):
        """The actions the OpaqueFunction returns for the launch arguments ``given`` (others: defaults)."""
        context = types.SimpleNamespace(launch_configurations=_Arguments({**declared, **given}))
        return opaque.kwargs["function"](context), context.launch_configurations.read

    return types.SimpleNamespace(module=module, entities=entities, declared=declared, launch=launch)


def _node(rig, **given):
    (node,), _ = rig.launch(**given)
    assert type(node).__name__ == "LifecycleNode"
    return node


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _ros_parameters(path: Path) -> dict:
    """config/multi_camera.yaml's parameters as the node sees them: nested keys flattened to dotted names."""
    def flat(prefix, value):
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flat(f"{prefix}{key}.", item).items()}
        return {prefix[:-1]: value}
    return flat("", yaml.safe_load(path.read_text())["/**"]["ros__parameters"])


def test_imports_only_the_launch_api_it_declares():
    tree = ast.parse(LAUNCH.read_text())
    imported = {(n.module, a.name) for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module.split(".")[0] in ("launch", "launch_ros")
                for a in n.names}
    assert imported == {(m, name) for m, names in LAUNCH_API.items() for name in names}
    assert "ros2 launch sgdepth_ros multi_camera.launch.py" in ast.get_docstring(tree)


def test_declares_exactly_the_arguments_it_uses(rig):
    assert rig.declared == {
        "namespace": "sgdepth", "params_file": "", "camera_root": "", "image_topic": "image_raw",
        "camera_info_topic": "camera_info", "model_path": "", "device": "auto", "precision": "fp32",
        "use_sim_time": "false", "large_images": "true", "rviz": "false", "fixed_frame": "base_link"}
    used = {e.args[0] for e in walk(rig.entities) if type(e).__name__ == "LaunchConfiguration"}
    _, read = rig.launch()
    assert used | read == set(rig.declared)
    declarations = [e for e in rig.entities if type(e).__name__ == "DeclareLaunchArgument"]
    assert all(e.kwargs.get("description") for e in declarations)
    # the declarations come first: launch applies their defaults before the OpaqueFunction runs
    kinds = [type(e).__name__ for e in rig.entities]
    assert kinds.index("OpaqueFunction") > max(i for i, k in enumerate(kinds) if k == "DeclareLaunchArgument")


def test_remaps_every_camera_of_the_default_rig_to_its_driver_topics(rig):
    node = _node(rig)
    assert node.kwargs["parameters"][0] == f"{ROOT}/config/multi_camera.yaml"
    expected = []
    for cam in RIG:
        expected += [(f"{cam}/image", f"/{cam}/image_raw"), (f"{cam}/image/compressed", f"/{cam}/image_raw/compressed"),
                     (f"{cam}/camera_info", f"/{cam}/camera_info")]
    assert node.kwargs["remappings"] == expected


def test_topic_pattern_follows_the_arguments(rig):
    node = _node(rig, camera_root="/rig/", image_topic="color/image_raw", camera_info_topic="/color/camera_info")
    remapped = dict(node.kwargs["remappings"])
    assert remapped["left/image"] == "/rig/left/color/image_raw"
    assert remapped["left/image/compressed"] == "/rig/left/color/image_raw/compressed"
    assert remapped["rear/camera_info"] == "/rig/rear/color/camera_info"
    assert dict(_node(rig, camera_root="rig").kwargs["remappings"])["front/image"] == "/rig/front/image_raw"


def test_params_file_argument_replaces_the_rig(rig, tmp_path):
    # the node-name form of a parameters file (not '/**') works too
    params = _write(tmp_path / "two.yaml", "sgdepth:\n  ros__parameters:\n    cameras: [cam_a, cam_b]\n")
    node = _node(rig, params_file=params, namespace="vision")
    assert node.kwargs["parameters"][0] == params
    assert node.kwargs["namespace"] == "vision" and node.kwargs["name"] == "sgdepth"
    assert [r[0] for r in node.kwargs["remappings"]] == [
        "cam_a/image", "cam_a/image/compressed", "cam_a/camera_info",
        "cam_b/image", "cam_b/image/compressed", "cam_b/camera_info"]


@pytest.mark.parametrize("text, problem", [
    ("/**:\n  ros__parameters:\n    model_path: m.pth\n", "non-empty list of camera names"),
    ("/**:\n  ros__parameters:\n    cameras: []\n", "non-empty list of camera names"),
    ("/**:\n  ros__parameters:\n    cameras: front\n", "non-empty list of camera names"),
    ("/**:\n  ros__parameters:\n    cameras: [1, 2]\n", "non-empty list of camera names"),
    ("a:\n  ros__parameters:\n    cameras: [x]\nb:\n  ros__parameters:\n    cameras: [y]\n", "several different"),
    ("/**:\n  ros__parameters:\n    cameras: [front\n", "cannot read"),
    (None, "cannot read"),
])
def test_a_params_file_without_a_usable_cameras_list_is_a_clear_error(rig, tmp_path, text, problem):
    path = tmp_path / "rig.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(RuntimeError, match=problem) as error:
        rig.launch(params_file=str(path))
    assert str(path) in str(error.value)


def test_starts_the_lifecycle_node_with_the_model_arguments(rig):
    node = _node(rig, model_path="/m/model.pth", device="cuda:1", precision="fp16", use_sim_time="True")
    assert (node.kwargs["package"], node.kwargs["executable"]) == ("sgdepth_ros", "sgdepth_node")
    overrides = node.kwargs["parameters"][1]
    assert overrides == {"model_path": "/m/model.pth", "device": "cuda:1", "precision": "fp16", "use_sim_time": True}
    from sgdepth_ros.ros.params import PARAMS_BY_NAME
    assert set(overrides) - {"use_sim_time"} <= set(PARAMS_BY_NAME)
    assert _node(rig).kwargs["parameters"][1]["use_sim_time"] is False


def test_rviz_and_the_large_images_profile(rig):
    args = dict(rig.declared)
    rviz = next(e for e in rig.entities if type(e).__name__ == "Node")
    assert rviz.kwargs["executable"] == "rviz2"
    assert [_resolve(a, args) for a in rviz.kwargs["arguments"]] == [
        "-d", f"{ROOT}/config/multi_camera.rviz", "-f", "base_link"]
    condition = rviz.kwargs["condition"]
    assert type(condition).__name__ == "IfCondition" and _resolve(condition.args[0], args) == "false"
    profiles = {e.args[0]: _resolve(e.args[1], args) for e in rig.entities
                if type(e).__name__ == "SetEnvironmentVariable"}
    assert profiles == dict.fromkeys(("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"),
                                     f"{ROOT}/config/fastdds_large_images.xml")


def test_every_file_it_names_exists_and_is_installed(rig, monkeypatch):
    strings = {s for e in walk(rig.entities) for s in e.args + tuple(e.kwargs.values()) if isinstance(s, str)}
    strings |= {s for e in walk(rig.entities) if type(e).__name__ == "PathJoinSubstitution"
                for s in e.args[0] if isinstance(s, str)}
    strings |= set(re.findall(r'"([\w.]+\.(?:yaml|rviz|xml))"', LAUNCH.read_text()))  # inside the OpaqueFunction
    named = {f"config/{s}" for s in strings if re.fullmatch(r"[\w.]+\.(yaml|rviz|xml)", s)}
    assert named == {"config/multi_camera.yaml", "config/multi_camera.rviz", "config/fastdds_large_images.xml"}
    setup_kwargs = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: setup_kwargs.update(kwargs))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    installed = {f"{folder.split('/')[-1]}/{Path(f).name}" for folder, files in setup_kwargs["data_files"]
                 for f in files}
    for name in named | {"launch/multi_camera.launch.py", "launch/sgdepth.launch.py"}:
        assert (ROOT / name).is_file(), name
        assert name in installed, f"{name} is not in setup.py's data_files"


def test_example_rig_parameters_are_valid_for_the_node():
    from sgdepth_ros.ros.params import PARAMS_BY_NAME, PER_CAMERA, validate, validate_together
    values = _ros_parameters(RIG_PARAMS)
    assert values["cameras"] == RIG and values["batch_size"] == 0
    assert values["rear.input_transport"] == "compressed"
    per_camera = {f"{cam}.{name}" for cam in RIG for name in PER_CAMERA}
    assert set(values) <= set(PARAMS_BY_NAME) | per_camera, set(values) - set(PARAMS_BY_NAME) - per_camera
    assert all(validate(name, value) is None for name, value in values.items()), \
        [validate(name, value) for name, value in values.items()]
    assert validate_together(values) is None
    # only what differs from config/sgdepth.yaml (the defaults), except batch_size, shown on purpose
    assert [name for name in values if name in PARAMS_BY_NAME and PARAMS_BY_NAME[name].default == values[name]
            and not isinstance(values[name], list)] == ["batch_size"]


def test_the_commented_camera_height_variant_is_valid_too(tmp_path):
    """Uncommenting the scale_mode camera_height lines gives a rig the node accepts: a height for every camera."""
    text = re.sub(r"^(\s*)# (\s*(?:scale_mode|front|left|right|camera_height):.*)$", r"\1\2",
                  RIG_PARAMS.read_text(), flags=re.M)
    values = _ros_parameters(Path(_write(tmp_path / "height.yaml", text)))
    from sgdepth_ros.ros.params import validate, validate_together
    assert values["scale_mode"] == "camera_height"
    assert all(values.get(f"{cam}.camera_height", 0) > 0 for cam in RIG)
    assert all(validate(name, value) is None for name, value in values.items())
    assert validate_together(values) is None
    assert "camera rear" in validate_together({**values, "rear.camera_height": 0.0})  # the reason names the camera


def _displays(displays):
    for display in displays:
        yield display
        yield from _displays(display.get("Displays", []))


def test_rviz_config_shows_every_camera_of_the_rig():
    config = yaml.safe_load(RIG_RVIZ.read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "base_link"
    displays = list(_displays(manager["Displays"]))
    topics = {d["Topic"]["Value"]: d["Class"] for d in displays if "Topic" in d}
    cameras = yaml.safe_load(RIG_PARAMS.read_text())["/**"]["ros__parameters"]["cameras"]
    shown = {topic.split("/")[2] for topic in topics}
    assert shown == set(cameras) == set(RIG)
    for cam in cameras:
        assert topics[f"/sgdepth/{cam}/depth/color"] == "rviz_default_plugins/Image"
        assert topics[f"/sgdepth/{cam}/semantic/overlay"] == "rviz_default_plugins/Image"
        assert topics[f"/sgdepth/{cam}/points"] == "rviz_default_plugins/PointCloud2"
    assert [d["Name"] for d in manager["Displays"] if d["Class"] == "rviz_common/Group"] == cameras


def test_rviz_topics_are_node_outputs():
    messages = pytest.importorskip("sgdepth_ros.ros.messages")  # needs the ROS message wheels
    outputs = {topic for metric in (True, False) for topic, _ in messages.output_topics(metric).values()}
    displays = _displays(yaml.safe_load(RIG_RVIZ.read_text())["Visualization Manager"]["Displays"])
    for display in displays:
        if "Topic" in display:
            namespace, cam, output = display["Topic"]["Value"].lstrip("/").split("/", 2)
            assert namespace == "sgdepth" and cam in RIG and output in outputs, display["Topic"]["Value"]
