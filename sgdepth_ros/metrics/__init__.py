"""Depth and segmentation metrics (pure numpy), shared by the trainer's evaluators and bag replay.

Modules: ``depth`` (KITTI/Eigen masks, scaling, the 7 errors), ``segmentation`` (confusion matrix, IoU, mIoU),
``distance_bins`` (errors per ground-truth distance).
"""
