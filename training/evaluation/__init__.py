"""Evaluators of the SGDepth trainer (spec §6): depth metrics on KITTI (Eigen / KITTI split / KITTI 2015) and the
synthetic world, segmentation mIoU on Cityscapes.

The metric code itself is the runtime's :mod:`sgdepth_ros.metrics` (shared with bag replay). Modules: ``velodyne``
(KITTI velodyne → depth map), ``depth_gt`` (ground-truth sources and the KITTI 2015 dataset), ``runner`` (a model over a dataset, usable between
training epochs), ``report`` (tables and JSON).
"""
