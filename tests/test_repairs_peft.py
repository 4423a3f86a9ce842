"""peft records against real peft releases."""

from __future__ import annotations

import pytest

from matrix import T451, breaks, common, target, untouched, works

pytestmark = pytest.mark.matrix


def stack(peft: str):
    return (target(f"peft=={peft}"), target(*T451), target("accelerate==1.15.0"), common())


INT8 = """
import warnings, torch
from peft import prepare_model_for_int8_training
from peft.utils import prepare_model_for_int8_training as from_utils
from transformers import GPT2Config, GPT2LMHeadModel
assert prepare_model_for_int8_training is from_utils
model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=32, n_positions=16))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = prepare_model_for_int8_training(model)
    prepare_model_for_int8_training(model)
assert out is model
assert not any(p.requires_grad for p in model.parameters())  # kbit preparation froze the base model
print(sum("prepare_model_for_kbit_training" in str(w.message) for w in caught))
"""


def test_int8_training_breaks_on_0_10_and_is_repaired() -> None:
    folders = stack("0.10.0")
    breaks(
        INT8, *folders, error="ImportError: cannot import name 'prepare_model_for_int8_training' from 'peft'"
    )
    assert works(INT8, *folders).strip() == "1"  # the deprecation warning, once


def test_int8_training_repaired_on_latest() -> None:
    folders = stack("0.15.2")
    breaks(
        INT8, *folders, error="ImportError: cannot import name 'prepare_model_for_int8_training' from 'peft'"
    )
    works(INT8, *folders)


def test_int8_training_untouched_on_0_9() -> None:
    out = untouched(
        INT8
        + """
import inspect, peft.utils.other as other
RECORD = ("peft-prepare-model-for-int8-training", "peft-utils-prepare-model-for-int8-training-export", "peft-prepare-model-for-int8-training-export")
assert inspect.getsourcefile(prepare_model_for_int8_training) == other.__file__
""",
        *stack("0.9.0"),
    )
    assert out.strip() == "2"  # upstream's own shim warns on every call
