"""Cells of the replay's Markdown and console tables, and strict-JSON conversion (pure; shared by :mod:`.report` and
:mod:`.rig_report`)."""
from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

DASH = "–"  # an empty cell


def to_jsonable(value: Any) -> Any:
    """A deep copy made of JSON types: NaN/inf → None, numpy scalars/arrays → numbers/lists, Path → str."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def num(value: Any) -> float | None:
    """A finite float, or None (missing, NaN, inf, not a number)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or the dash."""
    f = num(value)
    return DASH if f is None else f"{f:.{digits}f}"


def count(value: Any) -> str:
    """A count, or the dash for None."""
    return DASH if value is None else str(value)


def cell(value: Any, limit: int = 80) -> str:
    """Any value as one table cell (JSON for containers, at most ``limit`` characters, pipes escaped)."""
    if isinstance(value, (dict, list, tuple)):
        text = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(", ", ": "))
    elif value is None:
        text = DASH
    elif isinstance(value, float):
        text = DASH if num(value) is None else f"{value:.6g}"
    else:
        text = str(value)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text.replace("|", "\\|")


def pct(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole`` ("n/a" for 0)."""
    return f"{100.0 * part / whole:.3g} %" if whole else "n/a"


def table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    """A Markdown table's lines (default alignment: first column left, the others right)."""
    align = align or ["---"] + ["--:"] * (len(header) - 1)
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"] + \
           ["| " + " | ".join(r) + " |" for r in rows]
