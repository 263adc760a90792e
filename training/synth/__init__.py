"""The synthetic driving world: scene generation, Embree ray casting, exports to KITTI/Cityscapes/rosbag2."""
