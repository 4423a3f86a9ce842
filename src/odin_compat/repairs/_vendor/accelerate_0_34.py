"""From accelerate 0.34.2: `is_tpu_available`. It warned on every call; this copy warns once.

Source: https://github.com/huggingface/accelerate/blob/v0.34.2/src/accelerate/utils/imports.py
"""

import sys

from odin_compat.records import warn_once


def is_tpu_available(check_device=True):
    "Checks if `torch_xla` is installed and potentially if a TPU is in the environment"
    warn_once(
        "accelerate-is-tpu-available",
        "`is_tpu_available` is deprecated and will be removed in v0.27.0. "
        "Please use the `is_torch_xla_available` instead.",
    )
    imports = sys.modules["accelerate.utils.imports"]  # upstream read these as its own globals
    # Due to bugs on the amp series GPUs, we disable torch-xla on them
    if imports.is_cuda_available():
        return False
    _tpu_available = imports._torch_xla_available
    if check_device:
        if _tpu_available:
            try:
                import torch_xla.core.xla_model as xm

                # Will raise a RuntimeError if no XLA configuration is found
                _ = xm.xla_device()
                return True
            except RuntimeError:
                return False
    return _tpu_available
