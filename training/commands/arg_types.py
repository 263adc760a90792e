"""argparse value types shared by the offline commands."""
from __future__ import annotations

import argparse


def size(text: str) -> tuple[int, int]:
    """'1024x512' → (1024, 512)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1024x512, got {text!r}") from None
    return w, h
