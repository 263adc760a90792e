"""Full precision for geometry and photometric losses under mixed precision (``--amp bf16|fp16``).

Autocast runs matrix products in bf16/fp16. That is harmless for the network but not for view synthesis: bf16 keeps
8 significant bits, so pixel coordinates above 512 are quantised to steps of 4 (a 1–3 px warp error), and fp16
overflows once u·z passes 65 504 (a far point at the right image border). :func:`float32` turns autocast off inside
a function and promotes its half-precision tensor arguments to float32, so back-projection, projection, warping and
the photometric error are computed exactly as without AMP; gradients flow back through the casts unchanged.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import torch

__all__ = ["float32", "to_float32"]

F = TypeVar("F", bound=Callable[..., Any])
_HALF = (torch.float16, torch.bfloat16)


def to_float32(value: Any) -> Any:
    """A bf16/fp16 tensor as float32 (lists and tuples element-wise); anything else unchanged."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in _HALF else value
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(v) for v in value)
    return value


def _device_type(args: tuple, kwargs: dict) -> str:
    for value in (*args, *kwargs.values()):
        if isinstance(value, (list, tuple)) and value:
            value = value[0]
        if isinstance(value, torch.Tensor):
            return value.device.type
    return "cpu"


def float32(fn: F) -> F:
    """Decorator: run ``fn`` with autocast disabled on its tensors' device, half-precision arguments promoted."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.autocast(device_type=_device_type(args, kwargs), enabled=False):
            return fn(*to_float32(args), **{k: to_float32(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]
