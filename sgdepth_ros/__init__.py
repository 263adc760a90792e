"""sgdepth_ros: SGDepth monocular depth + Cityscapes segmentation for ROS 2.

``from sgdepth_ros import Predictor`` gives the ROS-free predictor; importing the package
itself stays light (torch loads on first use).
"""
__version__ = "0.1.0"
__all__ = ["Predictor", "Prediction", "__version__"]


def __getattr__(name):
    if name in ("Predictor", "Prediction"):
        from . import predictor
        return getattr(predictor, name)
    raise AttributeError(f"module 'sgdepth_ros' has no attribute {name!r}")
