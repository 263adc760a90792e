"""Checkpoint I/O: the reference ``model.pth`` (read only) and our safetensors format.

Reference checkpoints are plain state_dicts written by ``torch.save`` (PyTorch 1.1 legacy
format, saved on CUDA). They are read with ``weights_only=True``: a file holding anything but
tensors (e.g. a pickle with a code payload) is refused, nothing in it runs.

Our format is one ``.safetensors`` file: the weights plus a JSON document under the safetensors
metadata key ``sgdepth_ros`` (architecture, input size, depth range, classes, scale,
provenance), so the node and the CLI run it without extra flags.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import pickle
import re
from pathlib import Path

import torch

from ..atomic_file import atomic_write
from ..labels import CLASS_NAMES
from .sgdepth import ModelConfig, SGDepth

FORMAT_NAME = "sgdepth_ros"
FORMAT_VERSION = 1
METADATA_KEY = "sgdepth_ros"
DEFAULT_INPUT_SIZE = (640, 192)  # width, height of the released SGDepth models
DEFAULT_MIN_DEPTH, DEFAULT_MAX_DEPTH = 0.1, 100.0
# Network input sizes a checkpoint (or a caller) may ask for: each side a multiple of 32 up to MAX_INPUT_SIDE, at
# most MAX_INPUT_PIXELS in all (2048×2048; the released models run 640×192, Cityscapes evaluation 1024×512). Larger
# would allocate gigabytes per forward pass.
MAX_INPUT_SIDE = 4096
MAX_INPUT_PIXELS = 2048 * 2048
_MAX_LISTED = 12


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the network; the message names the file."""


def default_metadata(config: ModelConfig) -> dict:
    """Metadata for weights that carry none (the reference model.pth)."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": config.to_dict(),
        "input_size": {"width": DEFAULT_INPUT_SIZE[0], "height": DEFAULT_INPUT_SIZE[1]},
        "min_depth": DEFAULT_MIN_DEPTH,
        "max_depth": DEFAULT_MAX_DEPTH,
        "class_names": list(CLASS_NAMES),
        "void_channel": 19,
        "scale": {"factor": None, "source": "none: relative depth (model units)"},
        "trained": True,
        "provenance": {},
    }


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- reading

def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < header_len < path.stat().st_size


def _read_torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "Unsupported" in ln or "Unpickler error" in ln), lines[-1] if lines else "")
        raise CheckpointError(
            f"{path}: refused to load: not a plain tensor checkpoint — it is corrupt or holds Python objects "
            f"other than tensors, which could run code (read with weights_only=True; nothing was executed). "
            f"Detail: {detail}") from exc
    except Exception as exc:  # corrupt/truncated/not a torch file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a plain state_dict (a dict of tensors), got {type(obj).__name__}")
    return dict(obj)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """→ (tensors, validated metadata); the metadata is checked before any tensor is read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get(METADATA_KEY)
            if raw_meta is None:
                raise CheckpointError(f"{path}: safetensors file without '{METADATA_KEY}' metadata; "
                                      f"convert weights with 'sgdepth-ros convert'")
            try:
                meta = validate_metadata(json.loads(raw_meta), path)
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"{path}: metadata is not valid JSON ({exc})") from exc
            if isinstance(meta.get("quantization"), dict):
                source = meta["quantization"].get("source", {}).get("file", "its source checkpoint")
                raise CheckpointError(f"{path}: a quantised OpenVINO file (sgdepth-ros quantize): it runs through the "
                                      f"predictor, node and replay on the CPU, but holds no network weights; use "
                                      f"{source} here")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from exc
    return tensors, meta


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Read a checkpoint file → (state_dict on CPU, our validated metadata or None for a reference file).

    Raises ``CheckpointError`` (one line naming the file) for a missing, unreadable, corrupt or unsafe file and
    for metadata that fails :func:`validate_metadata`.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        if _is_safetensors(path):
            return _read_safetensors(path)
        state = _read_torch_state_dict(path)
    except OSError as exc:  # permissions, I/O errors: the file exists but cannot be read
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror or type(exc).__name__})") from exc
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, None


# --------------------------------------------------------------------------- metadata validation

def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_metadata(meta, path: str | os.PathLike = "<metadata>") -> dict:
    """Check a checkpoint's metadata document once, at load → the same dict with defaults for optional fields.

    Required: ``input_size`` {width, height}: integers, multiples of 32, each side within 32..MAX_INPUT_SIDE and
    width·height ≤ MAX_INPUT_PIXELS. Optional (defaults of :func:`default_metadata`): ``min_depth``/``max_depth``
    finite numbers with 0 < min < max; ``scale`` null or {factor: null or a positive finite number, source: text};
    ``trained`` bool; ``class_names`` 19 strings; ``void_channel`` 19; ``provenance`` an object; ``format``
    "sgdepth_ros" and ``format_version`` ≤ FORMAT_VERSION. Anything else raises ``CheckpointError`` naming the file
    and the field; other keys are kept as they are.
    """
    def bad(field: str, expected: str, value) -> CheckpointError:
        shown = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else json.dumps(value)
        return CheckpointError(f"{path}: refused: metadata field '{field}' must be {expected}, got {shown[:60]}")

    if not isinstance(meta, dict):
        raise bad("(document)", "a JSON object", meta)
    if "format" in meta and meta["format"] != FORMAT_NAME:
        raise bad("format", f'"{FORMAT_NAME}"', meta["format"])
    version = meta.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise bad("format_version", f"an integer 1..{FORMAT_VERSION} (a newer file needs a newer sgdepth_ros)",
                  version)
    size = meta.get("input_size")
    if not isinstance(size, dict):
        raise bad("input_size", "an object {width, height}", size)
    for side in ("width", "height"):
        value = size.get(side)
        if isinstance(value, bool) or not isinstance(value, int) or value % 32 or not 32 <= value <= MAX_INPUT_SIDE:
            raise bad(f"input_size.{side}", f"an integer multiple of 32 within 32..{MAX_INPUT_SIDE}", value)
    if size["width"] * size["height"] > MAX_INPUT_PIXELS:
        raise bad("input_size", f"at most {MAX_INPUT_PIXELS} pixels (width·height)",
                  f"{size['width']}x{size['height']}")
    out = {**default_metadata(ModelConfig()), **meta}
    for name in ("min_depth", "max_depth"):
        if not _is_number(out[name]) or out[name] <= 0:
            raise bad(name, "a positive finite number", out[name])
    if not out["min_depth"] < out["max_depth"]:
        raise bad("min_depth", f"below max_depth ({out['max_depth']:g})", out["min_depth"])
    scale = out["scale"]
    if scale is None:
        out["scale"] = scale = {"factor": None}
    if not isinstance(scale, dict):
        raise bad("scale", "null or an object {factor, source}", scale)
    factor = scale.get("factor")
    if factor is not None and not (_is_number(factor) and factor > 0):
        raise bad("scale.factor", "null or a positive finite number (metres per model unit)", factor)
    if scale.get("source") is not None and not isinstance(scale["source"], str):
        raise bad("scale.source", "text", scale["source"])
    if not isinstance(out["trained"], bool):
        raise bad("trained", "true or false", out["trained"])
    names = out["class_names"]
    if not (isinstance(names, list) and len(names) == len(CLASS_NAMES) and all(isinstance(n, str) for n in names)):
        raise bad("class_names", f"a list of {len(CLASS_NAMES)} names", names)
    if out["void_channel"] != 19 or isinstance(out["void_channel"], bool):
        raise bad("void_channel", "19", out["void_channel"])
    if not isinstance(out["provenance"], dict):
        raise bad("provenance", "an object", out["provenance"])
    return out



# --------------------------------------------------------------------------- configuration

_RESNET_BY_BLOCKS = {(False, 2): 18, (False, 6): 34, (True, 6): 50, (True, 23): 101, (True, 36): 152}
_SPLIT_BY_SHARED_STEPS = {0: 0, 1: 1, 3: 2, 5: 3, 7: 4}


def _resnet_depth(state: dict, prefix: str, path: Path) -> int:
    blocks = {int(m.group(1)) for k in state for m in [re.match(re.escape(prefix) + r"layer3\.(\d+)\.", k)] if m}
    bottleneck = any(k.startswith(prefix + "layer1.0.conv3.") for k in state)
    depth = _RESNET_BY_BLOCKS.get((bottleneck, len(blocks)))
    if depth is None:
        raise CheckpointError(f"{path}: cannot recognise the ResNet under '{prefix}' "
                              f"({len(blocks)} blocks in layer3, bottleneck={bottleneck})")
    return depth


def infer_config(state: dict[str, torch.Tensor], path: str | os.PathLike = "<state_dict>") -> ModelConfig:
    """Recover (num_layers, split_pos, depth_scales, pose_layers) from state_dict key names."""
    path = Path(path)
    if not any(k.startswith("common.encoder.encoder.") for k in state):
        sample = ", ".join(sorted(state)[:5])
        raise CheckpointError(f"{path}: no 'common.encoder.encoder.*' keys: not an SGDepth state_dict "
                              f"(first keys: {sample})")
    num_layers = _resnet_depth(state, "common.encoder.encoder.", path)
    shared = {k.split(".")[3] for k in state if k.startswith("common.decoder.blocks.")}
    split_pos = _SPLIT_BY_SHARED_STEPS.get(len(shared))
    if split_pos is None:
        raise CheckpointError(f"{path}: {len(shared)} shared decoder steps match no split position (0..4)")
    scales = len({k.split(".")[3] for k in state if k.startswith("depth.multires.convs.")})
    if scales not in range(1, 5):
        raise CheckpointError(f"{path}: found {scales} depth heads, expected 1..4")
    has_pose = any(k.startswith("pose.") for k in state)
    pose_layers = _resnet_depth(state, "pose.encoder.encoder.", path) if has_pose else None
    return ModelConfig(num_layers, split_pos, scales, pose_layers)


def _check_keys(model: SGDepth, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k} (file {list(state[k].shape)}, network {list(v.shape)})"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped)):
        if keys:
            listed = ", ".join(keys[:_MAX_LISTED]) + (f", … ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")
            problems.append(f"{len(keys)} {title} key(s): {listed}")
    if problems:
        raise CheckpointError(f"{path}: does not fit SGDepth{model.config.to_dict()}: " + "; ".join(problems))


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    config: ModelConfig | None = None) -> SGDepth:
    """Load a reference ``model.pth`` or one of our ``.safetensors`` files, strictly.

    Returns an ``SGDepth`` in eval mode, float32, on ``device``, with ``model.metadata`` set.
    ``config`` (optional) must agree with what the file holds; by default it is inferred
    from the key names. Raises ``CheckpointError`` naming the file and the offending keys.
    """
    path = Path(path)
    state, meta = read_checkpoint(path)
    inferred = infer_config(state, path)
    if config is not None and config != inferred:
        # A requested config without pose may load the pose-less part of a full checkpoint.
        if config.pose_layers is None and ModelConfig(**{**inferred.to_dict(), "pose_layers": None}) == config:
            state = {k: v for k, v in state.items() if not k.startswith("pose.")}
            inferred = config
        else:
            raise CheckpointError(f"{path}: holds {inferred.to_dict()}, but {config.to_dict()} was requested")
    model = SGDepth.from_config(inferred)
    _check_keys(model, state, path)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    if meta is None:
        meta = default_metadata(inferred)
        meta["provenance"] = {"source": "SGDepth reference checkpoint", "file": path.name,
                              "sha256": file_sha256(path)}
    meta["architecture"] = inferred.to_dict()
    model.metadata = meta
    return model.to(device).eval()


# --------------------------------------------------------------------------- writing

def save_checkpoint(model: SGDepth, path: str | os.PathLike, metadata: dict | None = None,
                    dtype: torch.dtype = torch.float32, inference_only: bool = True) -> Path:
    """Write ``model`` in our format (atomically). ``inference_only`` drops the pose network;
    ``dtype`` (float32/float16) applies to floating-point tensors."""
    from safetensors.torch import save

    path = Path(path)
    state = model.inference_state_dict() if inference_only else model.state_dict()
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in state.items()}
    config = model.config
    if inference_only:
        config = ModelConfig(config.num_layers, config.split_pos, config.depth_scales, None)
    meta = {**default_metadata(config), **(metadata or {})}
    meta["architecture"] = config.to_dict()
    meta["dtype"] = str(dtype).replace("torch.", "")
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta = validate_metadata(meta, path)  # never write a file that loading would refuse
    payload = save(tensors, metadata={METADATA_KEY: json.dumps(meta)})
    return atomic_write(path, lambda handle: handle.write(payload))


def read_metadata(path: str | os.PathLike) -> dict:
    """Metadata of a checkpoint without building the network (defaults for a reference file)."""
    state, meta = read_checkpoint(path)
    return meta if meta is not None else default_metadata(infer_config(state, path))
