"""Dataset readers for KITTI raw, Cityscapes and the synthetic world (which uses the same layouts)."""
