"""Launch sgdepth_node on a camera (system ROS 2: Humble or later, with launch_ros).

    ros2 launch sgdepth_ros sgdepth.launch.py model_path:=/path/to/model.pth \
        image:=/camera/image_raw camera_info:=/camera/camera_info rviz:=true

Outputs appear under the namespace (default /sgdepth): depth or depth/relative, depth/camera_info,
depth/color, semantic, semantic/color, semantic/overlay, semantic/labels, points or points/relative
(with scale_mode camera_height: both, frame by frame, and depth/scale). Scale settings (scale_mode,
camera_height, ground_frame, …) come from params_file: a launch argument would override that file.
The node is a managed (lifecycle) node; with autostart (the default in config/sgdepth.yaml) it
configures and activates itself, so no lifecycle manager is needed.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("namespace", "sgdepth", "namespace of the node and its outputs"),
    ("image", "/camera/image_raw", "input image topic (sensor_msgs/Image; its /compressed sibling with "
                                   "input_transport:=compressed)"),
    ("camera_info", "/camera/camera_info", "CameraInfo topic of the camera (optional; needed for points)"),
    ("model_path", "", "SGDepth checkpoint: a released model.pth or an sgdepth_ros .safetensors"),
    ("device", "auto", "auto, cpu, cuda or cuda:N"),
    ("precision", "fp32", "fp32, or fp16/bf16 on CUDA"),
    ("input_transport", "raw", "raw or compressed"),
    ("params_file", "", "parameters YAML (default: the package's config/sgdepth.yaml)"),
    ("use_sim_time", "false", "use /clock (bag replay with --clock)"),
    ("large_images", "true", "use the package's Fast DDS profile for large images on one host"),
    ("rviz", "false", "start rviz2 with the package's config/sgdepth.rviz"),
    ("camera_frame", "camera_color_optical_frame", "rviz fixed frame: the camera's optical frame_id"),
)


def generate_launch_description():
    share = FindPackageShare("sgdepth_ros")
    config = LaunchConfiguration
    default_params = PathJoinSubstitution([share, "config", "sgdepth.yaml"])
    params_file = PythonExpression(["'", config("params_file"), "' or '", default_params, "'"])
    image = config("image")

    node = LifecycleNode(
        package="sgdepth_ros",
        executable="sgdepth_node",
        name="sgdepth",
        namespace=config("namespace"),
        output="screen",
        parameters=[params_file, {
            "model_path": config("model_path"),
            "device": config("device"),
            "precision": config("precision"),
            "input_transport": config("input_transport"),
            "use_sim_time": PythonExpression(["'", config("use_sim_time"), "'.lower() == 'true'"]),
        }],
        remappings=[("image", image), ("image/compressed", [image, "/compressed"]),
                    ("camera_info", config("camera_info"))],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="sgdepth_rviz",
        arguments=["-d", PathJoinSubstitution([share, "config", "sgdepth.rviz"]), "-f", config("camera_frame")],
        condition=IfCondition(config("rviz")),
    )
    # Fast DDS 2 (Humble, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3 (Kilted) the FASTDDS_ name
    profile = PathJoinSubstitution([share, "config", "fastdds_large_images.xml"])
    large_images = [SetEnvironmentVariable(variable, profile, condition=IfCondition(config("large_images")))
                    for variable in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")]
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    return LaunchDescription([*declared, *large_images, node, rviz])
