"""From accelerate 0.33.0: `clear_device_cache`.

Source: https://github.com/huggingface/accelerate/blob/v0.33.0/src/accelerate/utils/memory.py
"""

from accelerate.utils import imports


def _false(*_a: object, **_k: object) -> bool:
    return False


# Backends this accelerate release cannot check for are treated as absent.
is_xpu_available = getattr(imports, "is_xpu_available", _false)
is_mlu_available = getattr(imports, "is_mlu_available", _false)
is_musa_available = getattr(imports, "is_musa_available", _false)
is_npu_available = getattr(imports, "is_npu_available", _false)
is_mps_available = getattr(imports, "is_mps_available", _false)


def clear_device_cache(garbage_collection=False):
    """
    Clears the device cache by calling `torch.{backend}.empty_cache`. Can also run `gc.collect()`, but do note that
    this is a *considerable* slowdown and should be used sparingly.
    """
    import gc

    import torch

    if garbage_collection:
        gc.collect()

    if is_xpu_available():
        torch.xpu.empty_cache()
    elif is_mlu_available():
        torch.mlu.empty_cache()
    elif is_musa_available():
        torch.musa.empty_cache()
    elif is_npu_available():
        torch.npu.empty_cache()
    elif is_mps_available(min_version="2.0"):
        torch.mps.empty_cache()
    else:
        torch.cuda.empty_cache()
