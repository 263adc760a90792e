"""sgdepth_ros: pip-installable Python package and ament_python ROS 2 package in one."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "sgdepth_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="SGDepth monocular depth + semantic segmentation for ROS 2, with trainer and evaluation",
    license="MIT",
    python_requires=">=3.10",
    # `training/` (trainer, datasets, synthetic world) installs as `sgdepth_training`, never as a bare `training`.
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"])
    + ["sgdepth_training"]
    + [f"sgdepth_training.{p}" for p in find_packages(where="training")],
    package_dir={"sgdepth_training": "training"},
    # the default checkpoint (synthetic world, fp16, ~33 MB) ships inside the package
    package_data={PACKAGE: ["models/*.safetensors"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pillow>=9",
        "safetensors>=0.4",
        "torch>=2.1",
        "torchvision>=0.16",
        "tqdm>=4.60",
    ],
    # synthetic world, bags and training (not needed on the vehicle path): pinned in requirements.txt
    extras_require={
        "fast": ["openvino>=2024.0"],
        # sgdepth-ros quantize (int8 files; running them needs only openvino)
        "quantize": ["openvino>=2024.0", "nncf>=2.14"],
        # export-onnx (the legacy TorchScript exporter needs onnx) and its --check; the tensorrt backend needs onnx
        # too, and TensorRT itself from the system (JetPack or a TensorRT install): never pulled from here
        "onnx": ["onnx>=1.14", "onnxruntime>=1.16"],
        "train": ["embreex>=4.3", "trimesh>=4.0", "rosbags>=0.10", "tensorboard>=2.14"],
        "replay": ["rosbags>=0.10", "mcap>=1.2", "matplotlib>=3.7"],
        "test": ["pytest>=7"],
    },
    zip_safe=True,
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "sgdepth-ros = sgdepth_ros.cli:main",
            "sgdepth_node = sgdepth_ros.ros.node:console_main",
        ],
    },
)
