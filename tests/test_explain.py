"""Old scripts whose error odin cannot repair die with odin's note on it: which release removed the
name, module or keyword, and what replaced it. Real releases of today (transformers 5.24, trl 1.16),
in a fresh interpreter whose uncaught error goes through odin's `sys.excepthook`."""

from __future__ import annotations

import pytest

from matrix import DATASETS, T5, common, run, target

pytestmark = pytest.mark.matrix


def today():
    return (target("trl==1.16.0"), target(*T5), target("accelerate==1.15.0"), target(*DATASETS), common())


def explained(code: str, error: str, note: str) -> None:
    """Without odin: `error`, bare. With odin: the same `error`, and `note` under it."""
    folders = today()
    plain = run(code, *folders, odin=False)
    assert plain.returncode == 1 and error in plain.stderr, plain.stderr[-3000:]
    assert "odin_compat:" not in plain.stderr
    proc = run(code, *folders, odin=True)
    assert proc.returncode == 1 and error in proc.stderr, proc.stderr[-3000:]
    assert note in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.index(error) < proc.stderr.index(note)  # the note follows the error


def test_explain_import_of_a_tensorflow_class() -> None:
    explained(
        "from transformers import TFAutoModel\n",
        "ImportError: cannot import name 'TFAutoModel' from 'transformers'",
        "odin_compat: `TFAutoModel` (name of `transformers`) was removed from transformers after 4.57.1 "
        "(5.5.4 lacks it); that backend (TensorFlow / Flax / JAX) is no longer supported: use the PyTorch class.",
    )


def test_explain_attribute_of_a_lazy_package() -> None:
    # transformers' lazy module words it without quotes: "module transformers has no attribute X"
    explained(
        "import transformers\ntransformers.TFAutoModelForCausalLM\n",
        "AttributeError: module transformers has no attribute TFAutoModelForCausalLM",
        "odin_compat: `TFAutoModelForCausalLM` (name of `transformers`) was removed from transformers after",
    )


def test_explain_removed_module() -> None:
    explained(
        "from trl.trainer.ppo_trainer import PPOTrainer\n",
        "ModuleNotFoundError: No module named 'trl.trainer.ppo_trainer'",
        "odin_compat: `trl.trainer.ppo_trainer` was removed from trl after 0.23.1 (0.29.1 lacks it); "
        "trl 1.16.0 has no replacement for it.",
    )


def test_explain_removed_submodule_as_attribute() -> None:
    explained(
        "import trl\ntrl.core.logprobs_from_logits\n",
        "AttributeError: module trl has no attribute core",
        "odin_compat: `trl.core` was removed from trl after 0.23.1 (0.29.1 lacks it)",
    )


def test_explain_removed_name_with_no_replacement() -> None:
    explained(
        "from trl import PPOTrainer\n",
        "ImportError: cannot import name 'PPOTrainer' from 'trl'",
        "odin_compat: `PPOTrainer` (name of `trl`) was removed from trl after 0.23.1 (0.29.1 lacks it); "
        "trl 1.16.0 has no replacement for it.",
    )


def test_explain_removed_keyword() -> None:
    explained(
        "from trl import SFTTrainer\nSFTTrainer(model=None, infinite=True)\n",
        "TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'infinite'",
        "odin_compat: `infinite` (keyword of `SFTTrainer.__init__`) was removed from trl after 0.12.2 "
        "(0.15.2 lacks it); trl 0.12 deprecated it for `TrainingArguments.max_steps` / `num_train_epochs`, "
        "which set the training length.",
    )


# Keywords whose feature today's release no longer has (odin_compat.explain.GONE_KEYWORDS): one per family.


def test_explain_model_init_keyword() -> None:
    explained(
        "from trl import RewardTrainer\nRewardTrainer(model=None, model_init=lambda: None)\n",
        "TypeError: RewardTrainer.__init__() got an unexpected keyword argument 'model_init'",
        "odin_compat: `model_init` (keyword of `RewardTrainer.__init__`) was removed from trl after 0.23.1 "
        "(0.29.1 lacks it); today's trainer takes `model`",
    )


def test_explain_preprocess_logits_for_metrics_keyword() -> None:
    explained(
        "from trl import DPOTrainer\nDPOTrainer(model=None, preprocess_logits_for_metrics=len)\n",
        "TypeError: DPOTrainer.__init__() got an unexpected keyword argument 'preprocess_logits_for_metrics'",
        "odin_compat: `preprocess_logits_for_metrics` (keyword of `DPOTrainer.__init__`) was removed from trl after "
        "0.23.1 (0.29.1 lacks it); the old DPOTrainer gave it the chosen/rejected logit means",
    )


def test_explain_optimizer_cls_and_kwargs_keyword() -> None:
    explained(
        "from trl import DPOTrainer\nDPOTrainer(model=None, optimizer_cls_and_kwargs=None)\n",
        "TypeError: DPOTrainer.__init__() got an unexpected keyword argument 'optimizer_cls_and_kwargs'",
        "pass `optimizers=(optimizer, None)`.",
    )


def test_explain_adapter_name_keyword() -> None:
    explained(
        "from trl import KTOTrainer\nKTOTrainer(model=None, ref_adapter_name='ref')\n",
        "TypeError: KTOTrainer.__init__() got an unexpected keyword argument 'ref_adapter_name'",
        "odin_compat: `ref_adapter_name` (keyword of `KTOTrainer.__init__`) was removed from trl after 0.23.1 "
        "(0.29.1 lacks it); today's KTOTrainer makes its own frozen `ref` adapter",
    )


def test_explain_generate_use_model_defaults() -> None:
    # generate() takes unknown keywords and refuses them as model keywords (a ValueError, not a TypeError)
    explained(
        "import torch\nfrom transformers import GPT2Config, GPT2LMHeadModel\n"
        "m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=32, n_positions=16))\n"
        "m.generate(torch.tensor([[1, 2]]), max_new_tokens=2, use_model_defaults=False)\n",
        "ValueError: The following `model_kwargs` are not used by the model: ['use_model_defaults']",
        "odin_compat: `use_model_defaults` (keyword of `GenerationMixin.generate`) was removed from transformers "
        "after 4.57.1 (5.5.4 lacks it); transformers 5 always fills the unset values",
    )


def test_explain_the_error_an_error_was_raised_from() -> None:
    code = """
try:
    from trl.trainer.bco_config import BCOConfig
except ImportError as exc:
    raise RuntimeError("this script needs BCO") from exc
"""
    explained(
        code, "RuntimeError: this script needs BCO", "odin_compat: `trl.trainer.bco_config` was removed"
    )


@pytest.mark.parametrize(
    "code",
    [
        # a script's own module that shares a last part with a library module (`utils`)
        "import os, sys\nopen('utils.py', 'w').write('x = 1\\n')\nsys.path.insert(0, os.getcwd())\n"
        "from utils import is_torch_tpu_available\n",
        "import trl\nfrom json import TFAutoModel\n",  # a removed name, asked of an unrelated module
        "import trl\nimport mypackage.trainer.ppo_trainer\n",
        "import trl\ndef get_peft_config(x):\n    pass\nget_peft_config(1, unknown=2)\n",
        "import trl\nimport json\njson.TFAutoModel\n",
    ],
    ids=["own-module", "other-module", "own-package", "own-keyword", "own-attribute"],
)
def test_no_note_on_a_scripts_own_error(code: str) -> None:
    proc = run(code, *today(), odin=True)
    assert proc.returncode == 1 and "Error" in proc.stderr
    assert "odin_compat:" not in proc.stderr, proc.stderr[-3000:]
