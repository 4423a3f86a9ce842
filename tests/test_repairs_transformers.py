"""transformers records against real transformers releases (tiny models built from configs)."""

from __future__ import annotations

import pytest

from matrix import (
    DATASETS,
    T5,
    T440,
    T445,
    T449,
    T450,
    T451,
    T457,
    breaks,
    common,
    run,
    target,
    untouched,
    works,
)

pytestmark = pytest.mark.matrix

ACC = "accelerate==1.15.0"


def stack(*specs: str):
    # transformers 4.x releases carry their own (old) huggingface_hub; a venv's current datasets
    # needs a newer hub and would break `transformers.trainer`'s import, so give them datasets 3.6.
    extra = (target(*DATASETS),) if specs[0].startswith("transformers==4.") else ()
    if specs[0].startswith("transformers==4.40."):
        # likewise a current peft needs transformers >= 4.42 (EncoderDecoderCache); give 4.40 its peft
        extra = (*extra, target("peft==0.10.0"))
    return (target(*specs), *extra, target(ACC), common())


# A 1-layer GPT-2 built from a config, a few rows of token ids: no download, seconds on CPU.
TINY = """
import os, tempfile, torch, transformers
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=32, n_positions=16))
rows = [{"input_ids": torch.arange(i, i + 8) % 32, "labels": torch.arange(i, i + 8) % 32} for i in range(8)]
out = tempfile.mkdtemp()
def targs(**kw):
    kw.setdefault("max_steps", 2)
    kw.setdefault("save_strategy", "no")
    return TrainingArguments(output_dir=out, per_device_train_batch_size=2, report_to=[],
                             logging_strategy="no", use_cpu=True, **kw)
"""


# --- AdamW -------------------------------------------------------------------------------------

ADAMW = """
import inspect, warnings, torch
from transformers import AdamW
from transformers.optimization import AdamW as AdamW2
assert AdamW is AdamW2
sig = inspect.signature(AdamW.__init__).parameters
assert (sig["eps"].default, sig["weight_decay"].default, sig["correct_bias"].default) == (1e-6, 0.0, True)
p = torch.nn.Parameter(torch.ones(3))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
p.grad = torch.ones(3)
opt.step()
print(repr(round(p[0].item(), 6)))
"""


def test_adamw_breaks_on_4_50_and_is_repaired() -> None:
    folders = stack(*T450)
    breaks(ADAMW, *folders, error="ImportError: cannot import name 'AdamW' from 'transformers'")
    repaired = works(ADAMW, *folders)
    upstream = works(ADAMW, *stack(*T449))  # the same numbers as the last release that had it
    assert repaired == upstream, (repaired, upstream)


def test_adamw_repaired_on_transformers_5() -> None:
    folders = stack(*T5)
    breaks(ADAMW, *folders, error="ImportError: cannot import name 'AdamW' from 'transformers'")
    works(ADAMW, *folders)


def test_adamw_untouched_on_4_49() -> None:
    untouched(
        ADAMW
        + """
import transformers.optimization as optimization
RECORD = ("transformers-adamw", "transformers-adamw-export")
assert inspect.getsourcefile(AdamW) == optimization.__file__
_o = [o for o in odin_compat.report()["outcomes"] if o["id"] == "transformers-adamw-export"]
assert _o and _o[0]["status"] == "skipped", _o
""",
        *stack(*T449),
    )


# --- evaluation_strategy <-> eval_strategy -------------------------------------------------------

EVAL_OLD = (
    TINY
    + """
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    a = targs(evaluation_strategy="steps", eval_steps=5)
    b = targs(evaluation_strategy="no")
print(str(a.eval_strategy), str(b.eval_strategy), sum("evaluation_strategy" in str(w.message) for w in caught))
"""
)

EVAL_NEW = (
    TINY
    + """
a = targs(eval_strategy="steps", eval_steps=5)
print(str(getattr(a, "eval_strategy", None) or a.evaluation_strategy))
"""
)


@pytest.mark.parametrize("specs", [T451, T5])
def test_evaluation_strategy_breaks_and_is_renamed(specs: tuple) -> None:
    folders = stack(*specs)
    breaks(
        EVAL_OLD,
        *folders,
        error="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'evaluation_strategy'",
    )
    assert works(EVAL_OLD, *folders).split() == ["IntervalStrategy.STEPS", "IntervalStrategy.NO", "1"]


def test_evaluation_strategy_untouched_on_4_50() -> None:
    out = untouched(
        EVAL_OLD
        + """
RECORD = "transformers-evaluation-strategy"
assert not hasattr(TrainingArguments.__init__, "__odin_record__")
""",
        *stack(*T450),
    )
    assert out.split()[:2] == ["IntervalStrategy.STEPS", "IntervalStrategy.NO"]


def test_eval_strategy_breaks_on_4_40_and_is_renamed() -> None:
    folders = stack(*T440)
    breaks(
        EVAL_NEW,
        *folders,
        error="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'eval_strategy'",
    )
    assert works(EVAL_NEW, *folders).strip() == "IntervalStrategy.STEPS"


def test_eval_strategy_untouched_on_4_45() -> None:
    untouched(EVAL_NEW + '\nRECORD = "transformers-eval-strategy-old"\n', *stack(*T445))


# --- Trainer(tokenizer=...) <-> processing_class -------------------------------------------------

TOKENIZER = (
    TINY
    + """
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast
tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]")))
t = Trainer(model=model, args=targs(), train_dataset=rows, {kw}=tok)
assert (getattr(t, "processing_class", None) or t.tokenizer) is tok
print("ok")
"""
)


def test_trainer_tokenizer_breaks_on_5_and_is_renamed() -> None:
    code = TOKENIZER.replace("{kw}", "tokenizer")
    folders = stack(*T5)
    breaks(
        code, *folders, error="TypeError: Trainer.__init__() got an unexpected keyword argument 'tokenizer'"
    )
    works(code, *folders)


def test_trainer_processing_class_breaks_on_4_45_and_is_renamed() -> None:
    code = TOKENIZER.replace("{kw}", "processing_class")
    folders = stack(*T445)
    breaks(
        code,
        *folders,
        error="TypeError: Trainer.__init__() got an unexpected keyword argument 'processing_class'",
    )
    works(code, *folders)


@pytest.mark.parametrize("kw", ["tokenizer", "processing_class"])
def test_trainer_tokenizer_untouched_on_4_57(kw: str) -> None:
    untouched(
        TOKENIZER.replace("{kw}", kw)
        + """
RECORD = ("transformers-trainer-tokenizer", "transformers-trainer-processing-class")
assert not hasattr(Trainer.__init__, "__odin_record__")
""",
        *stack(*T457),
    )


# --- Seq2SeqTrainer(tokenizer=...) -> processing_class (its own __init__) ---------------------------

SEQ2SEQ_TOKENIZER = (
    TOKENIZER.replace("Trainer(", "Seq2SeqTrainer(")
    .replace("return TrainingArguments(", "return Seq2SeqTrainingArguments(")
    .replace("def targs(", "from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments\ndef targs(")
)


def test_seq2seq_trainer_tokenizer_breaks_on_5_and_is_renamed() -> None:
    code = SEQ2SEQ_TOKENIZER.replace("{kw}", "tokenizer")
    folders = stack(*T5)
    breaks(
        code,
        *folders,
        error="TypeError: Seq2SeqTrainer.__init__() got an unexpected keyword argument 'tokenizer'",
    )
    works(code, *folders)
    # as 4.57.1's deprecate_kwarg(raise_if_both_names=True): both names at once are refused
    both = SEQ2SEQ_TOKENIZER.replace("{kw}=tok", "tokenizer=tok, processing_class=tok")
    proc = run(both, *folders, odin=True)
    assert proc.returncode == 1 and "ValueError: Both `tokenizer` and `processing_class`" in proc.stderr, (
        proc.stderr
    )


def test_seq2seq_trainer_tokenizer_untouched_on_4_57() -> None:
    # 4.57.1 renames it itself (deprecate_kwarg): the same script runs there without the record
    untouched(
        SEQ2SEQ_TOKENIZER.replace("{kw}", "tokenizer")
        + """
RECORD = "transformers-seq2seq-trainer-tokenizer"
""",
        *stack(*T457),
    )


# --- Trainer.train(model_path=...) -> resume_from_checkpoint -----------------------------------------

TRAIN_MODEL_PATH = (
    TINY
    + """
t = Trainer(model=model, args=targs(), train_dataset=rows)
result = t.train(model_path=None)
assert t.state.global_step == 2, t.state.global_step
print("ok")
"""
)


def test_trainer_train_model_path() -> None:
    folders = stack(*T5)
    breaks(
        TRAIN_MODEL_PATH,
        *folders,
        error="TypeError: Trainer.train() got an unexpected keyword argument 'model_path'",
    )
    works(TRAIN_MODEL_PATH, *folders)


def test_trainer_train_model_path_untouched_on_4_57() -> None:
    untouched(
        TRAIN_MODEL_PATH
        + """
RECORD = "transformers-trainer-train-model-path"
assert not hasattr(Trainer.train, "__odin_record__")
""",
        *stack(*T457),
    )


# --- subclass overrides with the old arity --------------------------------------------------------

OVERRIDE = """
class MyTrainer(Trainer):
    def {method}:
        self.calls = getattr(self, "calls", 0) + 1
        return {body}
t = MyTrainer(model=model, args=targs(), train_dataset=rows)
t.train()
assert t.calls >= 2, t.calls
print(t.calls)
"""

COMPUTE_LOSS = TINY + OVERRIDE.format(
    method="compute_loss(self, model, inputs, return_outputs=False)",
    body="super().compute_loss(model, inputs, return_outputs)",
)
TRAINING_STEP = TINY + OVERRIDE.format(
    method="training_step(self, model, inputs)", body="super().training_step(model, inputs)"
)
BATCH_SAMPLES = TINY + OVERRIDE.format(
    method="get_batch_samples(self, epoch_iterator, num_batches)",
    body="super().get_batch_samples(epoch_iterator, num_batches, self.args.device)",
)


@pytest.mark.parametrize("specs", [T449, T5])
def test_compute_loss_override_breaks_and_is_adapted(specs: tuple) -> None:
    folders = stack(*specs)
    breaks(
        COMPUTE_LOSS, *folders, error="compute_loss() got an unexpected keyword argument 'num_items_in_batch'"
    )
    works(COMPUTE_LOSS, *folders)


def test_training_step_override_breaks_and_is_adapted() -> None:
    folders = stack(*T449)
    breaks(TRAINING_STEP, *folders, error="training_step() takes 3 positional arguments but 4 were given")
    works(TRAINING_STEP, *folders)


def test_get_batch_samples_override_breaks_and_is_adapted() -> None:
    folders = stack(*T450)
    breaks(BATCH_SAMPLES, *folders, error="get_batch_samples() takes 3 positional arguments but 4 were given")
    works(BATCH_SAMPLES, *folders)


def test_overrides_untouched_on_4_45() -> None:
    # 4.45 calls the old arity: no hook is installed and the override is the user's own function.
    untouched(
        COMPUTE_LOSS
        + """
RECORD = ("transformers-override-compute-loss", "transformers-override-training-step", "transformers-override-get-batch-samples")
assert "__init_subclass__" not in vars(Trainer)
assert not hasattr(MyTrainer.compute_loss, "__odin_record__")
""",
        *stack(*T445),
    )


# --- is_torch_tpu_available ----------------------------------------------------------------------

TPU = """
import warnings
from transformers import is_torch_tpu_available
from transformers.utils import is_torch_tpu_available as from_utils
from transformers.utils.import_utils import is_torch_tpu_available as from_import_utils
assert is_torch_tpu_available is from_utils is from_import_utils
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    print(is_torch_tpu_available(), is_torch_tpu_available(check_device=False))
"""


@pytest.mark.parametrize("specs", [T451, T5])
def test_is_torch_tpu_available_breaks_and_is_backported(specs: tuple) -> None:
    folders = stack(*specs)
    breaks(
        TPU, *folders, error="ImportError: cannot import name 'is_torch_tpu_available' from 'transformers'"
    )
    assert works(TPU, *folders).split() == ["False", "False"]


def test_is_torch_tpu_available_untouched_on_4_50() -> None:
    untouched(
        TPU
        + """
import inspect, transformers.utils.import_utils as upstream
RECORD = ("transformers-is-torch-tpu-available", "transformers-utils-is-torch-tpu-available", "transformers-is-torch-tpu-available-export")
assert inspect.getsourcefile(inspect.unwrap(is_torch_tpu_available)) == upstream.__file__
""",
        *stack(*T450),
    )


# --- no_cuda -> use_cpu ------------------------------------------------------------------------------

NO_CUDA = """
import tempfile
from transformers import TrainingArguments
a = TrainingArguments(output_dir=tempfile.mkdtemp(), no_cuda=True, report_to=[])
b = TrainingArguments(output_dir=tempfile.mkdtemp(), no_cuda=False, report_to=[])
print(a.use_cpu, b.use_cpu, str(a.device))
"""


def test_no_cuda_breaks_on_5_and_is_translated() -> None:
    folders = stack(*T5)
    breaks(
        NO_CUDA,
        *folders,
        error="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'no_cuda'",
    )
    assert works(NO_CUDA, *folders).split() == ["True", "False", "cpu"]


def test_no_cuda_untouched_on_4_57() -> None:
    out = untouched(NO_CUDA + '\nRECORD = "transformers-no-cuda"\n', *stack(*T457))
    assert out.split() == ["True", "False", "cpu"]  # the same as upstream's own deprecation path


# --- Trainer.tokenizer (attribute) ------------------------------------------------------------------

TOKENIZER_ATTR = (
    TINY
    + """
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast
tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]")))
t = Trainer(model=model, args=targs(), train_dataset=rows, processing_class=tok)
assert t.tokenizer is tok
t.tokenizer = None
assert t.processing_class is None
print("ok")
"""
)


def test_trainer_tokenizer_attribute_breaks_on_5_and_is_backported() -> None:
    folders = stack(*T5)
    breaks(TOKENIZER_ATTR, *folders, error="AttributeError: 'Trainer' object has no attribute 'tokenizer'")
    works(TOKENIZER_ATTR, *folders)


def test_trainer_tokenizer_attribute_untouched_on_4_57() -> None:
    untouched(
        TOKENIZER_ATTR
        + """
import inspect, transformers.trainer as upstream
RECORD = "transformers-trainer-tokenizer-attribute"
assert inspect.getsourcefile(Trainer.tokenizer.fget) == upstream.__file__
""",
        *stack(*T457),
    )


# --- resume_from_checkpoint: RNG state under torch >= 2.6 weights_only -------------------------------

RESUME = (
    TINY
    + """
Trainer(model=model, args=targs(max_steps=1, save_steps=1, save_strategy="steps"), train_dataset=rows).train()
t = Trainer(model=model, args=targs(max_steps=2), train_dataset=rows)
t.train(resume_from_checkpoint=os.path.join(out, "checkpoint-1"))
print(t.state.global_step)
"""
)


def test_rng_state_resume_breaks_on_4_45_and_is_repaired() -> None:
    folders = stack(*T445)
    breaks(RESUME, *folders, error="_pickle.UnpicklingError: Weights only load failed")
    assert works(RESUME, *folders).split()[-1] == "2"


def test_rng_state_resume_untouched_on_4_49() -> None:
    out = untouched(
        RESUME
        + """
RECORD = "transformers-rng-state-weights-only"
assert not hasattr(Trainer._load_rng_state, "__odin_record__")
""",
        *stack(*T449),
    )
    assert out.split()[-1] == "2"


# --- warmup_ratio / overwrite_output_dir (removed in 5.0) ----------------------------------------------

WARMUP = """
import tempfile
from transformers import TrainingArguments
a = TrainingArguments(output_dir=tempfile.mkdtemp(), warmup_ratio=0.1, overwrite_output_dir=True, report_to=[], use_cpu=True)
b = TrainingArguments(output_dir=tempfile.mkdtemp(), warmup_ratio=0.1, warmup_steps=3, report_to=[], use_cpu=True)
print(a.get_warmup_steps(95), b.get_warmup_steps(95))
"""


def test_warmup_ratio_and_overwrite_output_dir_break_on_5_and_are_adapted() -> None:
    folders = stack(*T5)
    breaks(
        WARMUP,
        *folders,
        error="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'warmup_ratio'",
    )
    repaired = works(WARMUP, *folders).split()
    assert repaired == works(WARMUP, *stack(*T457)).split() == ["10", "3"]  # the same steps as 4.57


def test_overwrite_output_dir_breaks_on_5() -> None:
    code = WARMUP.replace("warmup_ratio=0.1, overwrite_output_dir", "overwrite_output_dir")
    folders = stack(*T5)
    breaks(
        code,
        *folders,
        error="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'overwrite_output_dir'",
    )
    works(code, *folders)


def test_warmup_ratio_untouched_on_4_57() -> None:
    untouched(
        WARMUP
        + """
RECORD = "transformers-warmup-ratio"
from odin_compat.records import adapted
assert not adapted(TrainingArguments.__init__, RECORD)  # (4.57 does get the evaluation_strategy adapter)
_o = [o for o in odin_compat.report()["outcomes"] if o["id"] == "transformers-overwrite-output-dir"]
assert _o and _o[0]["status"] == "skipped", _o
""",
        *stack(*T457),
    )


# --- group_by_length / include_inputs_for_metrics (removed in 5.0) -------------------------------------

SAMPLING = """
import tempfile
from transformers import TrainingArguments
a = TrainingArguments(output_dir=tempfile.mkdtemp(), group_by_length=True, include_inputs_for_metrics=True,
                      report_to=[], use_cpu=True)
print(getattr(a, "train_sampling_strategy", None) or ("group_by_length" if a.group_by_length else "random"),
      a.include_for_metrics)
"""


def test_group_by_length_and_include_inputs_break_on_5_and_are_translated() -> None:
    folders = stack(*T5)
    breaks(
        SAMPLING,
        *folders,
        error="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'group_by_length'",
    )
    code = SAMPLING.replace("group_by_length=True, ", "")
    breaks(code, *folders, error="unexpected keyword argument 'include_inputs_for_metrics'")
    assert works(SAMPLING, *folders).split() == ["group_by_length", "['inputs']"]


def test_group_by_length_and_include_inputs_untouched_on_4_57() -> None:
    out = untouched(
        SAMPLING
        + """
RECORD = ("transformers-group-by-length", "transformers-include-inputs-for-metrics")
_o = [o for o in odin_compat.report()["outcomes"] if o["id"] == "transformers-include-inputs-for-metrics"]
assert _o and _o[0]["status"] == "skipped", _o
""",
        *stack(*T457),
    )
    assert out.split() == ["group_by_length", "['inputs']"]


# --- a repair survives transformers re-executing its __init__ ----------------------------------
# transformers 5's processing_utils calls direct_transformers_import(), which runs
# transformers/__init__.py again and puts a new module object in sys.modules.

REEXEC = """
import sys
from transformers import Trainer  # imports processing_utils: a new `transformers` module object
from transformers import AdamW
import transformers.pipelines
from transformers import is_torch_tpu_available
print(AdamW.__name__, callable(is_torch_tpu_available))
"""

REPORT_IS_TRUE = """
import json, sys, odin_compat
import transformers
first = sys.modules["transformers"]
from transformers import Trainer
assert sys.modules["transformers"] is not first, "transformers no longer re-executes its __init__"
status = {o["id"]: o["status"] for o in odin_compat.report()["outcomes"]}
assert status["transformers-adamw-export"] == "applied", status
assert "AdamW" in sys.modules["transformers"]._class_to_module  # what report() says holds now
print(json.dumps(status["transformers-adamw-export"]))
"""


def test_repairs_survive_a_reexecuted_transformers_module() -> None:
    folders = stack(*T5)
    breaks(REEXEC, *folders, error="ImportError: cannot import name 'AdamW' from 'transformers'")
    assert works(REEXEC, *folders).split() == ["AdamW", "True"]


def test_report_describes_the_module_now_loaded() -> None:
    works(REPORT_IS_TRUE, *stack(*T5))


# --- removed TrainingArguments fields given as command-line flags (HfArgumentParser) ----------------------

FLAGS = """
import warnings
warnings.simplefilter("ignore")
from transformers import HfArgumentParser, TrainingArguments
argv = ["--output_dir", "o", "--report_to", "none", "--evaluation_strategy", "steps", "--warmup_ratio", "0.1",
        "--overwrite_output_dir", "--no_cuda", "--group_by_length", "--include_inputs_for_metrics", "True"]
(a,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(argv)
strategy = getattr(a, "train_sampling_strategy", "group_by_length" if getattr(a, "group_by_length", False) else "?")
include = "inputs" in (getattr(a, "include_for_metrics", None) or []) or getattr(a, "include_inputs_for_metrics", False)
print(str(a.eval_strategy).split(".")[-1].lower(), a.get_warmup_steps(100), a.use_cpu, strategy, include)
"""


def test_removed_flags_break_on_5_and_are_translated() -> None:
    folders = stack(*T5)
    breaks(FLAGS, *folders, error="ValueError: Some specified arguments are not used by the HfArgumentParser")
    repaired = works(FLAGS, *folders).split()
    assert repaired == ["steps", "10", "True", "group_by_length", "True"]


def test_removed_flags_untouched_on_4_50() -> None:
    out = untouched(FLAGS + '\nRECORD = "transformers-hfargparser-removed-flags"\n', *stack(*T450))
    assert out.split() == ["steps", "10", "True", "group_by_length", "True"]  # what the release itself does


DROPPED_FLAGS = """
import warnings
from transformers import HfArgumentParser, TrainingArguments
argv = ["--output_dir", "o", "--report_to", "none", "--evaluation_strategy", "steps", "--tpu_num_cores", "8"]
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    (a,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(argv)
said = [str(w.message) for w in seen if "command-line flags" in str(w.message)]
print(str(a.eval_strategy).split(".")[-1].lower())
for line in sorted(said):
    print(line)
"""


def test_a_dropped_flag_is_said_to_have_no_effect_not_to_be_translated() -> None:
    # --tpu_num_cores went in transformers 5 and odin_compat has nothing to translate it to
    folders = stack(*T5)
    breaks(
        DROPPED_FLAGS,
        *folders,
        error="ValueError: Some specified arguments are not used by the HfArgumentParser",
    )
    out = works(DROPPED_FLAGS, *folders).splitlines()
    assert out[0] == "steps"
    translated = next(line for line in out if "--evaluation_strategy" in line)
    dropped = next(line for line in out if "--tpu_num_cores" in line)
    assert "translated them" in translated and "--tpu_num_cores" not in translated
    assert (
        "after transformers 4.57.1" in dropped and "no effect" in dropped and "translated them" not in dropped
    )


# --- from_pretrained keywords removed in 5.0 --------------------------------------------------------------

FROM_PRETRAINED = """
import tempfile, warnings
warnings.simplefilter("ignore")
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
path = tempfile.mkdtemp()
LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                             num_attention_heads=2, num_key_value_heads=1)).save_pretrained(path)
m = AutoModelForCausalLM.from_pretrained(path, use_auth_token=None, resume_download=None, load_in_8bit=False,
                                         use_flash_attention_2=False)
m = LlamaForCausalLM.from_pretrained(path, use_auth_token=None, load_in_4bit=False)
print(type(m).__name__, m.config._attn_implementation in ("sdpa", "eager"))
"""


def test_from_pretrained_removed_kwargs_break_on_5_and_are_adapted() -> None:
    folders = stack(*T5)
    breaks(
        FROM_PRETRAINED,
        *folders,
        error="TypeError: LlamaForCausalLM.__init__() got an unexpected keyword argument 'use_auth_token'",
    )
    assert works(FROM_PRETRAINED, *folders).split() == ["LlamaForCausalLM", "True"]


def test_from_pretrained_untouched_on_4_51() -> None:
    out = untouched(
        FROM_PRETRAINED + '\nRECORD = "transformers-from-pretrained-removed-kwargs"\n', *stack(*T451)
    )
    assert out.split() == ["LlamaForCausalLM", "True"]


# --- keyword adapters reach subclasses with an __init__ of their own ----------------------------
# trl's SFTConfig and Seq2SeqTrainingArguments are dataclass subclasses whose generated __init__
# never calls TrainingArguments.__init__; Seq2SeqTrainer checks its keywords before calling up.

SUBCLASSES = """
import json, warnings
warnings.simplefilter("ignore")
from transformers import GPT2Config, GPT2LMHeadModel, Seq2SeqTrainer, Seq2SeqTrainingArguments
from trl import SFTConfig
a = SFTConfig(output_dir="a", evaluation_strategy="no", use_cpu=True, report_to=[])
b = Seq2SeqTrainingArguments(output_dir="b", no_cuda=True, report_to=[])
model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=32, n_positions=16))
Seq2SeqTrainer(model=model, args=Seq2SeqTrainingArguments(output_dir="c", use_cpu=True, report_to=[]), tokenizer=None)
print(json.dumps([getattr(a.eval_strategy, "value", a.eval_strategy), b.use_cpu]))
"""


def test_keyword_adapters_reach_trainer_and_config_subclasses() -> None:
    folders = (*stack(*T5), target("trl==1.16.0"))
    breaks(
        SUBCLASSES,
        *folders,
        error="SFTConfig.__init__() got an unexpected keyword argument 'evaluation_strategy'",
    )
    assert works(SUBCLASSES, *folders).strip() == '["no", true]'
