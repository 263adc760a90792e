"""Small procedurally drawn road images for demos and tests (no download needed).

These are simple drawings (sky, road with lane marks, façades, a car), not the physically
rendered synthetic world of the trainer; they exist so every command has an input at hand.
"""
from __future__ import annotations

import cv2
import numpy as np


def road_scene(width: int = 1242, height: int = 375, seed: int = 0) -> np.ndarray:
    """→ HxWx3 uint8 RGB drawing of a road seen from a forward camera; varies with ``seed``."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    horizon = int(height * rng.uniform(0.40, 0.48))
    sky_top, sky_bottom = np.array([70, 130, 200]), np.array([190, 215, 235])
    t = np.linspace(0, 1, horizon)[:, None]
    img[:horizon] = (sky_top * (1 - t) + sky_bottom * t).astype(np.uint8)[:, None, :]
    img[horizon:] = (95, 110, 90)
    cx = width // 2 + int(rng.uniform(-0.05, 0.05) * width)
    road = np.array([[cx - 8, horizon], [cx + 8, horizon], [width * 0.95, height], [width * 0.05, height]], np.int32)
    cv2.fillPoly(img, [road], (110, 110, 115))
    for k in range(6):  # dashed centre line, perspective spacing
        a, b = 1.0 / (k + 1.5), 1.0 / (k + 2.0)
        y0, y1 = horizon + (height - horizon) * a, horizon + (height - horizon) * b
        cv2.line(img, (cx, int(y0)), (cx, int(y1)), (235, 235, 235), max(1, int(6 * a)))
    x = 0
    while x < width:  # façades left and right of the road
        w = int(rng.uniform(0.06, 0.14) * width)
        top = int(horizon * rng.uniform(0.15, 0.7))
        colour = tuple(int(c) for c in rng.integers(90, 200, 3))
        if x + w < cx - width * 0.12 or x > cx + width * 0.12:
            cv2.rectangle(img, (x, top), (x + w, horizon + 5), colour, -1)
            for wy in range(top + 10, horizon - 10, 22):
                for wx in range(x + 6, x + w - 12, 18):
                    cv2.rectangle(img, (wx, wy), (wx + 8, wy + 12), (60, 70, 90), -1)
        x += w
    car_w = int(width * rng.uniform(0.08, 0.14))
    car_x = cx + int(rng.uniform(-0.2, 0.1) * width)
    car_y = horizon + int((height - horizon) * rng.uniform(0.3, 0.5))
    cv2.rectangle(img, (car_x, car_y - car_w // 2), (car_x + car_w, car_y), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    cv2.rectangle(img, (car_x + car_w // 8, car_y - car_w // 2 - car_w // 5),
                  (car_x + car_w * 7 // 8, car_y - car_w // 2), (40, 50, 60), -1)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)
