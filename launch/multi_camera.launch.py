"""Launch ONE sgdepth_node serving a camera rig (system ROS 2: Humble or later, with launch_ros).

    ros2 launch sgdepth_ros multi_camera.launch.py model_path:=/path/to/model.pth rviz:=true
    ros2 launch sgdepth_ros multi_camera.launch.py params_file:=my_rig.yaml camera_root:=/rig \
        image_topic:=color/image_raw camera_info_topic:=color/camera_info

The cameras are the ``cameras`` list of the parameters file (default: the package's config/multi_camera.yaml,
four cameras front, left, right, rear). The node reads camera ``<cam>`` on ``<cam>/image`` (or
``<cam>/image/compressed`` when that camera's input_transport is compressed) and ``<cam>/camera_info``; this file
remaps them to the rig's driver topics ``<camera_root>/<cam>/<image_topic>`` (and its ``/compressed`` sibling) and
``<camera_root>/<cam>/<camera_info_topic>``: by default ``/front/image_raw``, ``/front/camera_info``, … Outputs
appear per camera under the namespace (default /sgdepth): ``/sgdepth/front/depth/color``, ``/sgdepth/front/points``,
… Per-camera settings (input_transport, camera_height, scale_factor) and batch_size come from the parameters file.
The node is a managed (lifecycle) node that configures and activates itself (autostart).
"""
from pathlib import Path

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "sgdepth_ros"
ARGUMENTS = (
    ("namespace", "sgdepth", "namespace of the node and its outputs"),
    ("params_file", "", "parameters YAML with the cameras list (default: the package's config/multi_camera.yaml)"),
    ("camera_root", "", "prefix of the cameras' driver topics: <camera_root>/<cam>/<image_topic>"),
    ("image_topic", "image_raw", "each camera's image topic below <camera_root>/<cam>/ (sensor_msgs/Image; its "
                                 "/compressed sibling for a camera with input_transport compressed)"),
    ("camera_info_topic", "camera_info", "each camera's CameraInfo topic below <camera_root>/<cam>/"),
    ("model_path", "", "SGDepth checkpoint: a released model.pth or an sgdepth_ros .safetensors"),
    ("device", "auto", "auto, cpu, cuda or cuda:N"),
    ("precision", "fp32", "fp32, or fp16/bf16 on CUDA"),
    ("use_sim_time", "false", "use /clock (bag replay with --clock)"),
    ("large_images", "true", "use the package's Fast DDS profile for large images on one host"),
    ("rviz", "false", "start rviz2 with the package's config/multi_camera.rviz"),
    ("fixed_frame", "base_link", "rviz fixed frame: the rig's frame, so that the cameras' clouds line up via TF"),
)
# what the node reads per camera (relative to its namespace) → the argument naming the driver's topic
CAMERA_INPUTS = (("image", "image_topic", ""), ("image/compressed", "image_topic", "/compressed"),
                 ("camera_info", "camera_info_topic", ""))


def topic(*parts: str) -> str:
    """An absolute topic name from parts with or without slashes: ('', 'front', 'image_raw') → '/front/image_raw'."""
    return "/" + "/".join(p.strip("/") for p in parts if p.strip("/"))


def cameras_in(params_file: str) -> list[str]:
    """The ``cameras`` list of a ROS 2 parameters file (under any node's ``ros__parameters``).

    Raises RuntimeError naming the file when it cannot be read, has no (or an empty, or more than one different)
    cameras list, or the list is not of strings. The names themselves are checked by the node.
    """
    try:
        data = yaml.safe_load(Path(params_file).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RuntimeError(f"{params_file}: cannot read the parameters file: {error}") from error
    found = []
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            parameters = value.get("ros__parameters")
            if isinstance(parameters, dict) and "cameras" in parameters and parameters["cameras"] not in found:
                found.append(parameters["cameras"])
            pending.extend(v for k, v in value.items() if k != "ros__parameters")
    if len(found) > 1:
        raise RuntimeError(f"{params_file}: several different cameras lists {found}; give one")
    cameras = found[0] if found else None
    if not cameras or not isinstance(cameras, list) or not all(isinstance(c, str) for c in cameras):
        raise RuntimeError(f"{params_file}: multi_camera.launch.py needs a non-empty list of camera names under "
                           f"ros__parameters, e.g. 'cameras: [front, left]' (got {cameras!r}); for a single "
                           "camera use sgdepth.launch.py")
    return cameras


def camera_remappings(cameras: list[str], camera_root: str, image_topic: str,
                      camera_info_topic: str) -> list[tuple[str, str]]:
    """(node input, driver topic) for every camera: ('front/image', '/front/image_raw'), …"""
    names = {"image_topic": image_topic, "camera_info_topic": camera_info_topic}
    return [(f"{camera}/{node_input}", topic(camera_root, camera, names[argument]) + suffix)
            for camera in cameras for node_input, argument, suffix in CAMERA_INPUTS]


def _rig_node(context):
    """The node, built once the launch arguments are known: the cameras are data in the parameters file."""
    arg = context.launch_configurations  # launch argument → value (defaults applied)
    default_params = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "multi_camera.yaml"])
    params_file = arg["params_file"] or default_params.perform(context)
    cameras = cameras_in(params_file)
    return [LifecycleNode(
        package=PACKAGE,
        executable="sgdepth_node",
        name="sgdepth",
        namespace=arg["namespace"],
        output="screen",
        parameters=[params_file, {
            "model_path": arg["model_path"],
            "device": arg["device"],
            "precision": arg["precision"],
            "use_sim_time": arg["use_sim_time"].lower() == "true",
        }],
        remappings=camera_remappings(cameras, arg["camera_root"], arg["image_topic"], arg["camera_info_topic"]),
    )]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    config = LaunchConfiguration
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="sgdepth_rviz",
        arguments=["-d", PathJoinSubstitution([share, "config", "multi_camera.rviz"]), "-f", config("fixed_frame")],
        condition=IfCondition(config("rviz")),
    )
    # Fast DDS 2 (Humble, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3 (Kilted) the FASTDDS_ name
    profile = PathJoinSubstitution([share, "config", "fastdds_large_images.xml"])
    large_images = [SetEnvironmentVariable(variable, profile, condition=IfCondition(config("large_images")))
                    for variable in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")]
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    return LaunchDescription([*declared, *large_images, OpaqueFunction(function=_rig_node), rviz])
