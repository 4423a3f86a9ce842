"""trl records against real trl releases (tiny GPT-2 and a word-level tokenizer built in place)."""

from __future__ import annotations

import pytest

from matrix import DATASETS, T5, T445, T449, T451, T457, breaks, common, target, untouched, works

pytestmark = pytest.mark.matrix


def stack(trl: str, transformers: tuple):
    return (
        target(f"trl=={trl}"),
        target(*transformers),
        target("accelerate==1.15.0"),
        target(*DATASETS),
        common(),
    )


SETUP = """
import tempfile, warnings, torch, datasets
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
vocab = {w: i for i, w in enumerate("[UNK] [PAD] [EOS] ### Human: Response: hello world a b".split())}
t = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=len(vocab), n_positions=32))
data = datasets.Dataset.from_dict({"text": ["hello world a", "b a hello"] * 2})
out = tempfile.mkdtemp()
warnings.simplefilter("ignore")
"""

# --- SFTTrainer(tokenizer=...) <-> processing_class ----------------------------------------------

SFT_TOK = (
    SETUP
    + """
from trl import SFTConfig, SFTTrainer
args = SFTConfig(output_dir=out, report_to=[], dataset_text_field="text", use_cpu=True)
trainer = SFTTrainer(model=model, args=args, train_dataset=data, {kw}=tok)
assert (getattr(trainer, "processing_class", None) or trainer.tokenizer) is tok
print("ok")
"""
)


def test_sfttrainer_tokenizer_breaks_on_0_16_and_is_renamed() -> None:
    code, folders = SFT_TOK.replace("{kw}", "tokenizer"), stack("0.16.1", T451)
    breaks(
        code,
        *folders,
        error="TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'tokenizer'",
    )
    works(code, *folders)


def test_sfttrainer_processing_class_breaks_on_0_11_and_is_renamed() -> None:
    code, folders = SFT_TOK.replace("{kw}", "processing_class"), stack("0.11.4", T445)
    breaks(
        code,
        *folders,
        error="TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'processing_class'",
    )
    works(code, *folders)


def test_sfttrainer_tokenizer_untouched_on_0_12() -> None:
    untouched(
        SFT_TOK.replace("{kw}", "tokenizer")
        + """
RECORD = ("trl-sfttrainer-tokenizer", "trl-sfttrainer-processing-class")
assert not hasattr(SFTTrainer.__init__, "__odin_record__")
""",
        *stack("0.12.2", T449),
    )


# --- SFTTrainer(dataset_text_field=..., max_seq_length=..., ...) -> SFTConfig ------------------------

SFT_ARGS = (
    SETUP
    + """
from trl import SFTConfig, SFTTrainer
args = SFTConfig(output_dir=out, report_to=[], use_cpu=True)
trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                     dataset_text_field="text", max_seq_length=12, dataset_num_proc=1)
a = trainer.args
assert a.dataset_text_field == "text" and a.dataset_num_proc == 1
assert (getattr(a, "max_length", None) if not hasattr(a, "max_seq_length") or a.max_seq_length is None else a.max_seq_length) == 12, a
print("ok")
"""
)


@pytest.mark.parametrize(("trl", "transformers"), [("0.16.1", T451), ("0.20.0", T457)])
def test_sfttrainer_config_args_break_and_are_moved(trl: str, transformers: tuple) -> None:
    folders = stack(trl, transformers)
    breaks(
        SFT_ARGS,
        *folders,
        error="TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'dataset_text_field'",
    )
    works(SFT_ARGS, *folders)


def test_sfttrainer_config_args_untouched_on_0_12() -> None:
    untouched(SFT_ARGS + '\nRECORD = "trl-sfttrainer-config-args"\n', *stack("0.12.2", T449))


# --- SFTConfig(max_seq_length=...) -> max_length -------------------------------------------------------

MAX_SEQ = (
    SETUP
    + """
from trl import SFTConfig
c = SFTConfig(output_dir=out, report_to=[], max_seq_length=24, use_cpu=True)
print(c.max_length)
"""
)


def test_sftconfig_max_seq_length_breaks_on_0_20_and_is_renamed() -> None:
    folders = stack("0.20.0", T457)
    breaks(
        MAX_SEQ,
        *folders,
        error="TypeError: SFTConfig.__init__() got an unexpected keyword argument 'max_seq_length'",
    )
    assert works(MAX_SEQ, *folders).strip() == "24"


def test_sftconfig_max_seq_length_untouched_on_0_19() -> None:
    out = untouched(MAX_SEQ + '\nRECORD = "trl-sftconfig-max-seq-length"\n', *stack("0.19.1", T451))
    assert out.strip() == "24"


# --- DataCollatorForCompletionOnlyLM -----------------------------------------------------------------

COLLATOR = (
    SETUP
    + """
from trl import DataCollatorForCompletionOnlyLM
from trl.trainer.utils import DataCollatorForCompletionOnlyLM as from_utils
assert DataCollatorForCompletionOnlyLM is from_utils
c = DataCollatorForCompletionOnlyLM("### Response:", instruction_template="### Human:", tokenizer=tok, mlm=False)
batch = c([tok("### Human: hello world ### Response: a b")["input_ids"], tok("### Response: b a")["input_ids"]])
print(batch["labels"].tolist())
"""
)


@pytest.mark.parametrize(("trl", "transformers"), [("0.20.0", T457), ("1.16.0", T5)])
def test_completion_only_collator_breaks_and_is_backported(trl: str, transformers: tuple) -> None:
    folders = stack(trl, transformers)
    breaks(
        COLLATOR,
        *folders,
        error="ImportError: cannot import name 'DataCollatorForCompletionOnlyLM' from 'trl'",
    )
    repaired = works(COLLATOR, *folders)
    upstream = works(COLLATOR, *stack("0.19.1", T451))  # the labels the last release that had it gives
    assert repaired == upstream, (repaired, upstream)


def test_completion_only_collator_untouched_on_0_19() -> None:
    untouched(
        COLLATOR
        + """
import inspect, trl.trainer.utils as upstream
RECORD = ("trl-completion-only-collator", "trl-trainer-completion-only-collator-export", "trl-completion-only-collator-export")
assert inspect.getsourcefile(DataCollatorForCompletionOnlyLM) == upstream.__file__
""",
        *stack("0.19.1", T451),
    )
