"""Commands are thin and independent: none imports another (shared helpers live in commands/helpers.py), and a
runtime-only install (no sgdepth_training) still gives a working CLI with a clear message for what needs it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from sgdepth_ros.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"sgdepth_ros.commands": ROOT / "sgdepth_ros" / "commands",
           "sgdepth_training.commands": ROOT / "training" / "commands"}


def _command_modules() -> set[str]:
    return {module if "." in module else f"sgdepth_ros.commands.{module}" for module, _ in COMMANDS.values()}


def _imports(package: str, path: Path) -> set[str]:
    """Absolute names of every module (and ``from X import name`` submodule candidate) a file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_the_command_registry_and_the_folders_agree():
    commands = _command_modules()
    on_disk = {f"{pkg}.{f.stem}" for pkg, folder in FOLDERS.items() for f in folder.glob("*.py")}
    assert commands <= on_disk, commands - on_disk


@pytest.mark.parametrize("path", [f for folder in FOLDERS.values() for f in sorted(folder.glob("*.py"))],
                         ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.name}")
def test_no_command_module_imports_another(path):
    package = next(pkg for pkg, folder in FOLDERS.items() if path.parent == folder)
    own = f"{package}.{path.stem}"
    imported = _imports(package, path) & (_command_modules() - {own})
    assert not imported, f"{path.relative_to(ROOT)} imports command module(s) {sorted(imported)}; " \
                         f"shared code belongs in sgdepth_ros/commands/helpers.py"


_BLOCK_TRAINING = r"""
import importlib.abc, sys

class BlockTraining(importlib.abc.MetaPathFinder):
    # what a runtime-only (colcon) install looks like: sgdepth_training is not there
    def find_spec(self, name, path=None, target=None):
        if name == "sgdepth_training" or name.startswith("sgdepth_training."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, BlockTraining())
from sgdepth_ros.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_without_training(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK_TRAINING, *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_demo_without_the_training_package_says_what_is_missing(tmp_path):
    done = _run_without_training("demo", "--output", str(tmp_path / "demo"), "--frames", "3")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "sgdepth_training" in lines[0] and "pip install" in lines[0], done.stderr
    assert not (tmp_path / "demo" / "synth").exists()  # nothing was started


def test_the_cli_works_without_the_training_package(tmp_path):
    helped = _run_without_training("--help")
    assert helped.returncode == 0, helped.stderr
    assert "infer" in helped.stdout and "(not installed here)" in helped.stdout
    synth = _run_without_training("synth", "--out", str(tmp_path / "s"))
    assert synth.returncode == 2 and "Traceback" not in synth.stderr
    assert "'sgdepth-ros synth' needs the offline tools" in synth.stderr


def test_machine_line_names_the_cpu_flags_that_decide_the_kernels():
    from sgdepth_ros.commands.helpers import cpu_flags, machine_description

    info = "processor\t: 0\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni avx512_bf16 pni\n"
    assert cpu_flags(info) == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert cpu_flags("Features\t: fp asimd sve\n") == ["asimd", "sve"]
    line = machine_description()
    assert "logical cores" in line and ("GPU" in line) and "(" in line


@pytest.mark.parametrize("text, expected", [("1024x512", (1024, 512)), ("640X192", (640, 192)), ("1x1", (1, 1))])
def test_the_shared_size_type_reads_width_by_height(text, expected):
    from sgdepth_ros.commands.arg_types import size
    assert size(text) == expected


@pytest.mark.parametrize("text", ["0x96", "320x0", "-320x96", "320x-96", "320x", "320", "axb", "320x96x3", ""])
def test_the_shared_size_type_refuses_what_no_image_can_be_with_the_valid_form(text):
    import argparse

    from sgdepth_ros.commands.arg_types import size
    with pytest.raises(argparse.ArgumentTypeError, match=r"WIDTHxHEIGHT in pixels, each >= 1 .*got " + repr(text)):
        size(text)
