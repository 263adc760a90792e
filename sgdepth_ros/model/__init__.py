"""The SGDepth network and its checkpoint I/O (torch and torchvision only)."""
from .checkpoint import (CheckpointError, infer_config, load_checkpoint, read_checkpoint,
                         read_metadata, save_checkpoint, validate_metadata)
from .sgdepth import SGDepth, ModelConfig, SGDepthOutput, check_input

__all__ = ["SGDepth", "ModelConfig", "SGDepthOutput", "check_input", "CheckpointError",
           "load_checkpoint", "save_checkpoint", "read_checkpoint", "read_metadata", "infer_config", "validate_metadata"]
