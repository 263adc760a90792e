"""The package installs as a ROS 2 ament_python package (colcon) and as a pip package."""
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format3_ament_python_with_ros_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "sgdepth_ros"
    assert root.find("export/build_type").text == "ament_python"
    depends = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "lifecycle_msgs", "rcl_interfaces"} <= depends
    assert (ROOT / "resource" / "sgdepth_ros").is_file()
    cfg = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/sgdepth_ros" in cfg and "install_scripts=$base/lib/sgdepth_ros" in cfg


def _colcon() -> str | None:
    candidates = [os.environ.get("SGDEPTH_COLCON"), str(ROOT / ".venv-colcon" / "bin" / "colcon"), shutil.which("colcon")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def test_colcon_build_installs_an_ament_package(tmp_path):
    colcon = _colcon()
    if colcon is None:
        pytest.skip("colcon not installed (make test installs it in .venv-colcon)")
    src = tmp_path / "src" / "sgdepth_ros"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv*", ".git", "build", "install", "log",
                                                             "__pycache__", "*.egg-info", "demo_output", ".cache"))
    listed = subprocess.run([colcon, "list"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "ros.ament_python" in listed.stdout, listed.stdout + listed.stderr
    build = subprocess.run([colcon, "build", "--event-handlers", "console_direct-"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    inst = tmp_path / "install" / "sgdepth_ros"
    assert (inst / "share" / "ament_index" / "resource_index" / "packages" / "sgdepth_ros").is_file()
    assert (inst / "share" / "sgdepth_ros" / "package.xml").is_file()
    for name in ("config/fastdds_large_images.xml", "config/sgdepth.yaml", "config/sgdepth.rviz",
                 "launch/sgdepth.launch.py"):
        assert (inst / "share" / "sgdepth_ros" / name).is_file(), name
    for exe in ("sgdepth-ros", "sgdepth_node"):  # where `ros2 run sgdepth_ros <exe>` looks
        assert os.access(inst / "lib" / "sgdepth_ros" / exe, os.X_OK), exe
    site = next((inst / "lib").glob("python3*/site-packages"))
    assert (site / "sgdepth_ros" / "model" / "sgdepth.py").is_file()
    assert not (site / "training").exists()  # no bare top-level 'training' module lands in site-packages
    assert (site / "sgdepth_training" / "loop.py").is_file()
    assert (site / "sgdepth_training" / "evaluation" / "runner.py").is_file()
    from sgdepth_ros.default_model import DEFAULT_MODEL_FILE  # the default checkpoint ships as package data
    assert (site / "sgdepth_ros" / "models" / DEFAULT_MODEL_FILE.name).is_file()
