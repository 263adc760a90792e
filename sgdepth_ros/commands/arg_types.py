"""argparse value types shared by the commands (runtime and offline)."""
from __future__ import annotations

import argparse
import math


def size(text: str) -> tuple[int, int]:
    """'1024x512' → (1024, 512): width and height in pixels, each a whole number ≥ 1."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        w = h = 0
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT in pixels, each >= 1 (e.g. 1024x512), "
                                         f"got {text!r}")
    return w, h


def multiple_of_32(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive multiple of 32 (e.g. 640, 192), got {text!r}") from None
    if value <= 0 or value % 32:
        raise argparse.ArgumentTypeError(f"must be a positive multiple of 32 (e.g. 640, 192), got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def batch_size(text: str) -> int:
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value
