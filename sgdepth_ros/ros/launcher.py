"""Start ``sgdepth_node`` as its own process on an isolated, loopback-only ROS graph (ROS-free).

Used by the integration tests, ``sgdepth-ros bench-node`` and live replay:

    env = ros_environment()                    # a free random ROS_DOMAIN_ID, LOCALHOST, Fast DDS profile
    with NodeProcess({"model_path": "m.safetensors"}, env) as node:
        node.wait_for_output("active:")
        ...
    node.returncode, node.output
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .domain import free_domain_id

PACKAGE = "sgdepth_ros"


def share_file(relative: str) -> Path:
    """A file of the package's share directory (``config/…``, ``launch/…``): installed or source tree."""
    source = Path(__file__).resolve().parents[2] / relative
    if source.exists():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory(PACKAGE)) / relative
        if installed.exists():
            return installed
    except Exception:  # not installed as a ROS package, or no AMENT_PREFIX_PATH
        pass
    raise FileNotFoundError(f"{relative} is neither in the source tree ({source}) nor in the {PACKAGE} share directory")


def ros_environment(domain_id: int | None = None, large_images: bool = True, log_dir: str | None = None) -> dict:
    """os.environ plus an isolated ROS graph: traffic on loopback only, ``domain_id`` or a random ROS_DOMAIN_ID
    (1..101) that no DDS participant on this machine uses (:func:`.domain.free_domain_id`), the Fast DDS profile
    for large images, logs in a temporary folder."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else free_domain_id())
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    env["ROS_LOG_DIR"] = log_dir or env.get("ROS_LOG_DIR") or tempfile.mkdtemp(prefix="sgdepth-roslog-")
    env["RCUTILS_COLORIZED_OUTPUT"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    if large_images:
        profile = str(share_file("config/fastdds_large_images.xml"))
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile  # Fast DDS 3 (Kilted and later)
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = profile  # Fast DDS 2 (Humble, Jazzy) reads only this name
    return env


def write_params(params: dict, path: Path) -> Path:
    """A ROS 2 params file applying ``params`` to the node under any name (JSON is valid YAML)."""
    path.write_text(json.dumps({"/**": {"ros__parameters": params}}, indent=1))
    return path


class NodeProcess:
    """``python -m sgdepth_ros.ros.node --ros-args --params-file …`` with stdout+stderr captured to a file."""

    def __init__(self, params: dict, env: dict, extra_args: tuple[str, ...] = (), workdir: str | None = None):
        self._dir = Path(workdir or tempfile.mkdtemp(prefix="sgdepth-node-"))
        self._log_path = self._dir / "node.log"
        self.params_file = write_params(params, self._dir / "params.yaml")
        self.command = [sys.executable, "-m", "sgdepth_ros.ros.node", "--ros-args",
                        "--params-file", str(self.params_file), *extra_args]
        self._env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> "NodeProcess":
        self._log = open(self._log_path, "wb")
        self.process = subprocess.Popen(self.command, env=self._env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    @property
    def output(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def wait_for_output(self, text: str, timeout: float = 120.0) -> None:
        """Block until ``text`` appears in the node's output; raises if the process ends first or on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return
            if self.returncode is not None:
                raise RuntimeError(f"sgdepth_node exited with {self.returncode} before printing {text!r}:\n{self.output}")
            time.sleep(0.1)
        raise TimeoutError(f"sgdepth_node did not print {text!r} within {timeout:.0f} s:\n{self.output}")

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait; kills after ``timeout``. Returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
