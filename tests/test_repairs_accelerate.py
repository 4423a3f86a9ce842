"""accelerate records against real accelerate (and peft/transformers) releases."""

from __future__ import annotations

import pytest

from matrix import breaks, common, target, untouched, works

pytestmark = pytest.mark.matrix


def acc(version: str):
    return target(f"accelerate=={version}")


# --- unwrap_model(keep_torch_compile=...) -----------------------------------------------------

UNWRAP = """
import torch
from accelerate import Accelerator
model = torch.nn.Linear(2, 2)
compiled = torch.compile(model)
acc = Accelerator(cpu=True)
assert acc.unwrap_model(compiled, keep_torch_compile=False) is model
assert acc.unwrap_model(compiled, keep_torch_compile=True) is compiled
assert acc.unwrap_model(compiled) is compiled
print("ok")
"""


def test_unwrap_model_keep_torch_compile_breaks_and_is_repaired() -> None:
    folder = acc("1.2.1")
    breaks(
        UNWRAP,
        folder,
        error="TypeError: Accelerator.unwrap_model() got an unexpected keyword argument 'keep_torch_compile'",
    )
    works(UNWRAP, folder)


def test_unwrap_model_untouched_where_upstream_has_it() -> None:
    untouched(
        UNWRAP
        + """
RECORD = "accelerate-unwrap-model-keep-torch-compile"
assert not hasattr(Accelerator.unwrap_model, "__odin_record__")
assert Accelerator.unwrap_model.__module__ == "accelerate.accelerator"
""",
        acc("1.3.0"),
    )


# --- clear_device_cache (peft >= 0.14 imports it) ---------------------------------------------

PEFT_STACK = ("peft==0.15.2",)
TRANSFORMERS_451 = ("transformers==4.51.3", "tokenizers==0.21.1", "huggingface_hub==0.30.2")

IMPORT_PEFT = """
import peft
from accelerate.utils.memory import clear_device_cache
clear_device_cache(garbage_collection=True)
clear_device_cache()
print(peft.__version__)
"""


def test_clear_device_cache_breaks_peft_import_and_is_repaired() -> None:
    folders = (target(*PEFT_STACK), target(*TRANSFORMERS_451), acc("0.31.0"), common())
    breaks(
        IMPORT_PEFT,
        *folders,
        error="ImportError: cannot import name 'clear_device_cache' from 'accelerate.utils.memory'",
    )
    assert works(IMPORT_PEFT, *folders).strip() == "0.15.2"


def test_clear_device_cache_untouched_on_0_32() -> None:
    untouched(
        """
import accelerate.utils.memory as memory
from accelerate.utils.memory import clear_device_cache
RECORD = "accelerate-clear-device-cache"
assert clear_device_cache.__code__.co_filename == memory.__file__
""",
        acc("0.32.1"),
    )


# --- Accelerator(dispatch_batches=..., even_batches=..., use_seedable_sampler=...) --------------

DL_ARGS = """
import warnings
from accelerate import Accelerator
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    a = Accelerator(cpu=True, dispatch_batches=False, even_batches=False, use_seedable_sampler=True)
    b = Accelerator(cpu=True, even_batches=False)
c = a.dataloader_config
assert (c.dispatch_batches, c.even_batches, c.use_seedable_sampler) == (False, False, True), c
assert b.even_batches is False
assert a.dispatch_batches is False and a.use_seedable_sampler is True
print(sum("DataLoaderConfiguration" in str(w.message) for w in caught))
"""


def test_dataloader_args_break_on_1_0_and_are_repaired() -> None:
    folder = acc("1.0.0")
    breaks(
        DL_ARGS,
        folder,
        error="TypeError: Accelerator.__init__() got an unexpected keyword argument 'dispatch_batches'",
    )
    assert works(DL_ARGS, folder).strip() == "1"  # translated, and warned once


def test_dataloader_args_repaired_on_latest() -> None:
    works(DL_ARGS, acc("1.15.0"))


def test_dataloader_args_untouched_where_deprecated_upstream() -> None:
    out = untouched(
        DL_ARGS
        + """
RECORD = "accelerate-dataloader-args"
assert not hasattr(Accelerator.__init__, "__odin_record__")
""",
        acc("0.34.2"),
    )
    assert out.strip() == "2"  # upstream's own FutureWarning, once per call


# --- is_tpu_available -------------------------------------------------------------------------

TPU = """
import warnings
from accelerate.utils import is_tpu_available
from accelerate.utils.imports import is_tpu_available as from_imports
assert is_tpu_available is from_imports
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    assert is_tpu_available() is False and is_tpu_available(check_device=False) is False
print("ok")
"""


@pytest.mark.parametrize("version", ["0.28.0", "1.0.0", "1.15.0"])
def test_is_tpu_available_breaks_and_is_repaired(version: str) -> None:
    folder = acc(version)
    breaks(TPU, folder, error="ImportError: cannot import name 'is_tpu_available' from 'accelerate.utils'")
    works(TPU, folder)


def test_is_tpu_available_untouched_on_0_27() -> None:
    untouched(
        TPU
        + """
RECORD = "accelerate-utils-is-tpu-available"
import accelerate.utils.imports as imports
import inspect
assert inspect.unwrap(is_tpu_available).__code__.co_filename == imports.__file__
""",
        acc("0.27.2"),
    )


def test_is_tpu_available_backport_untouched_on_0_34() -> None:
    # 0.34 still has the function in accelerate.utils.imports: the backport must not replace it.
    untouched(
        """
import accelerate.utils.imports as imports
RECORD = "accelerate-is-tpu-available"
import inspect
assert inspect.unwrap(imports.is_tpu_available).__code__.co_filename == imports.__file__
from accelerate.utils import is_tpu_available
assert is_tpu_available is imports.is_tpu_available
""",
        acc("0.34.2"),
    )


# --- import order: odin imported after the libraries ends in the same state ------------------

LATE = """
import warnings
warnings.simplefilter("ignore")
import accelerate.utils, peft
import odin_compat
from accelerate.utils import is_tpu_available
from peft import prepare_model_for_int8_training
from peft.utils.other import prepare_model_for_int8_training as inner
assert prepare_model_for_int8_training is inner
status = {o["id"]: o["status"] for o in odin_compat.report()["outcomes"]}
assert status["accelerate-utils-is-tpu-available"] == "applied", status
assert status["peft-prepare-model-for-int8-training-export"] == "applied", status
print(json.dumps(is_tpu_available(check_device=False)))
"""


def test_late_import_of_odin_repairs_parent_aliases_too() -> None:
    from _releases import run_json

    code = "import json\n" + LATE
    assert run_json(code, target("accelerate==1.15.0"), target("peft==0.21.2"), common()) is False
