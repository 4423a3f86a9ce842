"""Run `Accelerator.prepare` after an unsloth-style rebuild; print one JSON line with the outcome.

Usage: python prepare_scenario.py [--odin] [--late] [--odin-after]   (UNSLOTH_LIKE_XFORMERS=1: the user's xformers case)
  --odin  `import odin_compat` as the first line (the only change a user makes)
  --odin-after  `import odin_compat` only after the rebuild (the original `prepare` is gone by then)
  --late  rebuild once more after everything is imported (unsloth also rebuilds at model load)
"""

import sys

if "--odin" in sys.argv:
    import odin_compat  # noqa: F401

import json  # noqa: E402
import traceback  # noqa: E402

import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402

original_prepare = Accelerator.prepare
import standins.unsloth_like as unsloth_like  # noqa: E402

if "--odin-after" in sys.argv:
    import odin_compat  # noqa: F401

if "--late" in sys.argv:
    # A rebuild after every import is done (unsloth also rebuilds at model load): start from
    # the original function again and re-run the stand-in's code, which imports nothing new.
    import importlib

    Accelerator.prepare = original_prepare
    importlib.reload(unsloth_like)

result = {"rebuilt_file": Accelerator.prepare.__code__.co_filename}
try:
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    result.update(ok=True, error=None)
except Exception as exc:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    result.update(
        ok=False,
        error=f"{type(exc).__name__}: {exc}",
        where=f'File "{frame.filename}", line {frame.lineno}, in {frame.name}',
    )
print(json.dumps(result))
