"""Stand-in for unsloth 2025.3.3's `unsloth/models/_utils.py`, lines 720-739.

It rebuilds `Accelerator.prepare` from its source and execs it into this
module's globals, exactly as unsloth does when one CUDA device is visible
(here unconditionally: the tests run on CPU). This module, like unsloth's,
never imports `FP8BackendType` or `is_torch_version`, so the rebuilt function
raises NameError on accelerate >= 1.8 unless odin heals it.
"""

import inspect
import os  # names unsloth's module has too
import re  # noqa: F401
import warnings  # noqa: F401

import accelerate.state
import numpy as np  # noqa: F401
import torch  # noqa: F401
from accelerate.utils.dataclasses import DistributedType


def _prepare_backend(self, cpu=False, sagemaker_dp=False, backend: str = None) -> tuple[str, DistributedType]:
    return None, DistributedType.NO


accelerate.state.PartialState._prepare_backend = _prepare_backend

if os.environ.get("UNSLOTH_LIKE_XFORMERS") == "1":
    # unsloth does this when xformers >= 0.0.27 is installed (the user's case); it happens to
    # leak is_torch_version and DistributedType, so the first missing name is FP8BackendType.
    from accelerate.utils.operations import *  # noqa: F403

# unsloth's code, verbatim (module level, so `prepare` is this module's global).
import accelerate.accelerator  # noqa: E402

prepare = inspect.getsource(accelerate.accelerator.Accelerator.prepare)
prepare = prepare.split("\n")
spaces = prepare[0].find("def")
prepare = "\n".join(x[spaces:] for x in prepare)
x = "for obj in args:"
s = " " * spaces
prepare = prepare.replace(x, f"self.state.distributed_type = DistributedType.NO\n{s}{x}", 1)
exec(prepare, globals())
accelerate.accelerator.Accelerator.prepare = prepare
