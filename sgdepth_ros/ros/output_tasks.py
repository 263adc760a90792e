"""Which outputs each parameter switches on, and which network tasks each output needs (ROS-free).

``TOGGLES``: output key → the ``publish_*`` parameter that switches it on. ``OUTPUT_TASKS``: output key → the
decoder tails ("depth", "segmentation") it needs; only those run per frame (:func:`tasks_for_outputs`), and the
warm-up at configure runs every set the switched-on outputs can ask for (:func:`reachable_task_sets`).
"""
from __future__ import annotations

import itertools

TOGGLES = {"depth": "publish_depth", "depth_info": "publish_depth", "depth_color": "publish_depth_color",
           "semantic": "publish_semantic", "semantic_color": "publish_semantic_color",
           "overlay": "publish_overlay", "points": "publish_points", "odometry": "publish_odometry",
           "scale": "publish_depth"}
# network tasks each output needs (the point cloud carries a label field, so it needs both)
OUTPUT_TASKS = {"depth": ("depth",), "depth_info": ("depth",), "depth_color": ("depth",),
                "semantic": ("segmentation",), "semantic_color": ("segmentation",), "overlay": ("segmentation",),
                "points": ("depth", "segmentation"), "odometry": ("depth",), "scale": ("depth",)}
# what scale_mode camera_height adds to every prediction that runs the depth tail: the road labels
MEASURED_SCALE_TASKS = ("segmentation",)


def scale_tasks(measured: bool) -> tuple[str, ...]:
    """The tasks a measured (camera_height) scale adds whenever depth runs; () for the other scale modes."""
    return MEASURED_SCALE_TASKS if measured else ()


def tasks_for_outputs(wanted: set[str], scale_tasks: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The network tasks ("depth", "segmentation") that the wanted outputs need: only their decoder tails run.
    ``scale_tasks``: what a measured scale adds whenever depth runs (camera_height: segmentation, for the road)."""
    tasks = {task for key in wanted for task in OUTPUT_TASKS[key]}
    if "depth" in tasks:
        tasks |= set(scale_tasks)
    return tuple(sorted(tasks))


def reachable_task_sets(keys: set[str], scale_tasks: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every task set :func:`tasks_for_outputs` gives for a non-empty subset of ``keys`` (the outputs that are
    switched on), sorted: what the warm-up at configure runs, so no wanted output meets a cold graph."""
    keys = sorted(keys)
    return sorted({tasks_for_outputs(set(subset), scale_tasks) for r in range(1, len(keys) + 1)
                   for subset in itertools.combinations(keys, r)})
