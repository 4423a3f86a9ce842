"""peft records against real peft releases."""

from __future__ import annotations

import pytest

from matrix import T5, T451, breaks, common, target, untouched, works

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


# --- PeftModel.save_pretrained(convert_pissa_to_lora=...) -> path_initial_model_for_weight_conversion ----------

# A PiSSA adapter saved with the old keyword is converted to a plain LoRA adapter (rank doubled), tensor for
# tensor what the new keyword gives: peft 0.13.2 assigned the one to the other. Without odin, today's peft
# takes the old keyword into **kwargs and saves the adapter unconverted.
PISSA = """
import json, os, tempfile, warnings, torch
from transformers import GPT2Config, GPT2LMHeadModel
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=32, n_positions=16))
p = get_peft_model(model, LoraConfig(r=2, target_modules=["c_attn"], init_lora_weights="pissa"))
d = tempfile.mkdtemp()
init = os.path.join(d, "init")
p.peft_config["default"].init_lora_weights = True  # the initial adapter, saved as peft's docs do
p.save_pretrained(init)
p.peft_config["default"].init_lora_weights = "pissa"
with torch.no_grad():  # a "trained" adapter
    for name, w in p.named_parameters():
        if "lora_" in name:
            w.add_(0.01)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    p.save_pretrained(os.path.join(d, "old"), convert_pissa_to_lora=init)
p.save_pretrained(os.path.join(d, "new"), path_initial_model_for_weight_conversion=init)
cfg = json.load(open(os.path.join(d, "old", "adapter_config.json")))
old = load_file(os.path.join(d, "old", "adapter_model.safetensors"))
new = load_file(os.path.join(d, "new", "adapter_model.safetensors"))
assert cfg["r"] == 4 and cfg["init_lora_weights"] is True, f"saved unconverted: r={cfg['r']}, {cfg['init_lora_weights']}"
assert sorted(old) == sorted(new) and all(torch.equal(old[k], new[k]) for k in old)
print("ok")
"""


def test_save_pretrained_convert_pissa_to_lora() -> None:
    folders = (target("peft==0.21.2"), target(*T5), target("accelerate==1.15.0"), common())
    breaks(PISSA, *folders, error="AssertionError: saved unconverted: r=2, pissa")
    assert works(PISSA, *folders).strip().endswith("ok")
