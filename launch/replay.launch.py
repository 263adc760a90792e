"""Replay a recorded rosbag2 bag through sgdepth_node and show it in rviz (system ROS 2: Humble or later).

    ros2 launch sgdepth_ros replay.launch.py bag:=/path/to/bag rate:=0.5 \
        image:=/camera/image_raw camera_info:=/camera/camera_info record:=/tmp/sgdepth_out

What it starts:

* ``sgdepth.launch.py`` (included, not duplicated) with image, camera_info, model_path, namespace, rviz and
  ``use_sim_time:=true``, so the node stamps and times its work on the bag's /clock;
* after ``start_delay`` seconds (the node loads its model first): ``ros2 bag play <bag> --clock --rate <rate>``,
  with ``--loop`` when ``loop:=true``;
* with ``record:=<path>``: ``ros2 bag record -s mcap -o <path>`` of the node's outputs in its namespace and the
  input topics (Humble needs the ``ros-humble-rosbag2-storage-mcap`` package for ``-s mcap``).

An empty ``model_path`` (the default) means the checkpoint that ships inside the Python package
(``sgdepth_ros/models/sgdepth_synthetic_320x96_fp16.safetensors``, synthetic world only: a demo model, not one
for real cameras); if the installed package lacks it, the node reports the missing model_path.
"""
import importlib.util
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, TimerAction
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.substitutions import FindPackageShare

DEFAULT_MODEL = Path("models") / "sgdepth_synthetic_320x96_fp16.safetensors"

ARGUMENTS = (
    ("bag", None, "rosbag2 bag to replay: its folder, or a single .mcap/.db3 file (required)"),
    ("rate", "1.0", "playback rate of ros2 bag play"),
    ("model_path", "", "SGDepth checkpoint; empty = the package's shipped synthetic-world model"),
    ("image", "/camera/image_raw", "image topic in the bag (sensor_msgs/Image)"),
    ("camera_info", "/camera/camera_info", "CameraInfo topic in the bag (needed for points)"),
    ("namespace", "sgdepth", "namespace of the node and its outputs"),
    ("rviz", "true", "start rviz2 with the package's config/sgdepth.rviz"),
    ("loop", "false", "replay the bag in a loop"),
    ("record", "", "when set: record the node's outputs and the inputs into this new MCAP bag folder"),
    ("start_delay", "3.0", "seconds to wait before playing, while the node loads its model"),
)

# what sgdepth_node publishes relative to its namespace (sgdepth_ros.ros.messages.output_topics + labels)
OUTPUT_TOPICS = ("depth", "depth/relative", "depth/camera_info", "depth/color", "semantic", "semantic/color",
                 "semantic/overlay", "semantic/labels", "points", "points/relative")


def shipped_model() -> str:
    """Path of the checkpoint inside the installed sgdepth_ros package ('' when absent); does not import it."""
    spec = importlib.util.find_spec("sgdepth_ros")
    if spec is None or not spec.submodule_search_locations:
        return ""
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / DEFAULT_MODEL
        if candidate.is_file():
            return str(candidate)
    return ""


def _in_namespace(namespace, topic: str) -> PythonExpression:
    """'/<namespace>/<topic>' for any of 'sgdepth', '/sgdepth', '/sgdepth/' or '' as namespace."""
    return PythonExpression(["'/' + '/'.join(p for p in ('", namespace, "'.strip('/'), '", topic, "') if p)"])


def generate_launch_description():
    config = LaunchConfiguration
    share = FindPackageShare("sgdepth_ros")
    model_path = PythonExpression(["'", config("model_path"), "' or '", shipped_model(), "'"])

    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "sgdepth.launch.py"])),
        launch_arguments=[
            ("image", config("image")),
            ("camera_info", config("camera_info")),
            ("model_path", model_path),
            ("namespace", config("namespace")),
            ("rviz", config("rviz")),
            ("use_sim_time", "true"),
        ],
    )
    play = ["ros2", "bag", "play", config("bag"), "--clock", "--rate", config("rate")]
    player = TimerAction(period=config("start_delay"), actions=[
        ExecuteProcess(cmd=play, name="bag_play", output="screen", condition=UnlessCondition(config("loop"))),
        ExecuteProcess(cmd=[*play, "--loop"], name="bag_play", output="screen",
                       condition=IfCondition(config("loop"))),
    ])
    topics = [_in_namespace(config("namespace"), topic) for topic in OUTPUT_TOPICS]
    recorder = ExecuteProcess(
        cmd=["ros2", "bag", "record", "-s", "mcap", "-o", config("record"), *topics,
             config("image"), config("camera_info")],
        name="bag_record",
        output="screen",
        condition=IfCondition(PythonExpression(["'", config("record"), "' != ''"])),
    )
    declared = [DeclareLaunchArgument(name, description=text) if default is None
                else DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    return LaunchDescription([*declared, node, recorder, player])
