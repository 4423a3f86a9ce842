"""From transformers 4.50.3: `is_torch_tpu_available`. It warned on every call; this copy warns once.

Source: https://github.com/huggingface/transformers/blob/v4.50.3/src/transformers/utils/import_utils.py
"""

import functools
import importlib.util
import sys

from odin_compat.records import warn_once


@functools.lru_cache
def is_torch_tpu_available(check_device=True):
    "Checks if `torch_xla` is installed and potentially if a TPU is in the environment"
    warn_once(
        "transformers-is-torch-tpu-available",
        "`is_torch_tpu_available` is deprecated and will be removed in 4.41.0. "
        "Please use the `is_torch_xla_available` instead.",
    )

    imports = sys.modules["transformers.utils.import_utils"]  # upstream read it as its own global
    if not imports._torch_available:
        return False
    if importlib.util.find_spec("torch_xla") is not None:
        if check_device:
            # We need to check if `xla_device` can be found, will raise a RuntimeError if not
            try:
                import torch_xla.core.xla_model as xm

                _ = xm.xla_device()
                return True
            except RuntimeError:
                return False
        return True
    return False
