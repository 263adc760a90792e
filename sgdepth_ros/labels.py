"""Cityscapes label set used by SGDepth: trainIds 0..18, 255 = ignore/unknown."""
from __future__ import annotations

import numpy as np

IGNORE_ID = 255
NUM_CLASSES = 19  # trained classes; the network's channel 19 is an untrained "void" class

# (trainId, name, Cityscapes labelId, RGB colour)
CLASSES = (
    (0, "road", 7, (128, 64, 128)),
    (1, "sidewalk", 8, (244, 35, 232)),
    (2, "building", 11, (70, 70, 70)),
    (3, "wall", 12, (102, 102, 156)),
    (4, "fence", 13, (190, 153, 153)),
    (5, "pole", 17, (153, 153, 153)),
    (6, "traffic light", 19, (250, 170, 30)),
    (7, "traffic sign", 20, (220, 220, 0)),
    (8, "vegetation", 21, (107, 142, 35)),
    (9, "terrain", 22, (152, 251, 152)),
    (10, "sky", 23, (70, 130, 180)),
    (11, "person", 24, (220, 20, 60)),
    (12, "rider", 25, (255, 0, 0)),
    (13, "car", 26, (0, 0, 142)),
    (14, "truck", 27, (0, 0, 70)),
    (15, "bus", 28, (0, 60, 100)),
    (16, "train", 31, (0, 80, 100)),
    (17, "motorcycle", 32, (0, 0, 230)),
    (18, "bicycle", 33, (119, 11, 32)),
)
CLASS_NAMES = tuple(c[1] for c in CLASSES)
DYNAMIC_TRAIN_IDS = tuple(range(11, 19))  # person … bicycle: the classes SGDepth masks as movable


def palette() -> np.ndarray:
    """[256,3] uint8 RGB lookup table: trainId colour, black for 19, 255 and every other value."""
    table = np.zeros((256, 3), np.uint8)
    for train_id, _, _, rgb in CLASSES:
        table[train_id] = rgb
    return table


def label_id_to_train_id() -> np.ndarray:
    """[256] uint8 lookup table Cityscapes labelId → trainId (255 for every unevaluated labelId)."""
    table = np.full(256, IGNORE_ID, np.uint8)
    for train_id, _, label_id, _ in CLASSES:
        table[label_id] = train_id
    return table
