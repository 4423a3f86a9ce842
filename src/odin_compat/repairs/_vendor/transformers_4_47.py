"""From transformers 4.47.1: `safe_globals`, which allow-lists exactly the numpy objects an RNG-state
checkpoint holds (never weights_only=False).

Source: https://github.com/huggingface/transformers/blob/v4.47.1/src/transformers/trainer.py
"""

import contextlib

import numpy as np
import torch
from packaging import version


def safe_globals():
    if version.parse(torch.__version__).release < version.parse("2.6").release:
        return contextlib.nullcontext()

    np_core = np._core if version.parse(np.__version__) >= version.parse("2.0.0") else np.core
    allowlist = [np_core.multiarray._reconstruct, np.ndarray, np.dtype]
    # numpy >1.25 defines numpy.dtypes.UInt32DType, but below works for
    # all versions of numpy
    allowlist += [type(np.dtype(np.uint32))]

    return torch.serialization.safe_globals(allowlist)
