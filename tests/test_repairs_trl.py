"""trl records against real trl releases (tiny GPT-2 and a word-level tokenizer built in place)."""

from __future__ import annotations

import pytest

from matrix import DATASETS, T5, T440, T445, T449, T451, T457, breaks, common, target, untouched, works

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


# --- get_peft_config / get_quantization_config(model_config=...) -> model_args ---------------------

PEFT_CONFIG = """
import warnings
warnings.simplefilter("ignore")
from trl import ModelConfig, get_peft_config, get_quantization_config
config = ModelConfig(model_name_or_path="m", use_peft=True, lora_r=8)
peft_config = get_peft_config(model_config=config)
assert peft_config.r == 8, peft_config
assert get_quantization_config(model_config=config) is None
print("ok")
"""


def test_peft_and_quantization_config_take_model_config() -> None:
    folders = stack("1.16.0", T5)
    breaks(PEFT_CONFIG, *folders, error="got an unexpected keyword argument 'model_config'")
    works(PEFT_CONFIG, *folders)


def test_peft_and_quantization_config_untouched_on_0_12() -> None:
    untouched(
        PEFT_CONFIG
        + """
RECORD = ("trl-get-peft-config-model-config", "trl-get-quantization-config-model-config")
assert not hasattr(get_peft_config, "__odin_record__")
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


# --- names removed from trl's top level (found by tools/api_diff.py) ------------------------------------------

KBIT = """
from trl import get_kbit_device_map
from trl.trainer.utils import get_kbit_device_map as from_utils
assert get_kbit_device_map is from_utils
print(get_kbit_device_map())  # CPU: None
"""


def test_get_kbit_device_map_breaks_on_1_16_and_is_backported() -> None:
    folders = stack("1.16.0", T5)
    breaks(KBIT, *folders, error="ImportError: cannot import name 'get_kbit_device_map' from 'trl'")
    assert works(KBIT, *folders).strip() == "None"


def test_get_kbit_device_map_untouched_on_1_7() -> None:
    untouched(
        KBIT
        + """
import inspect, trl.trainer.utils as upstream
RECORD = ("trl-get-kbit-device-map", "trl-trainer-get-kbit-device-map-export", "trl-get-kbit-device-map-export")
assert inspect.getsourcefile(get_kbit_device_map) == upstream.__file__
""",
        *stack("1.7.1", T5),
    )


CHAT_FORMAT = (
    SETUP
    + """
from trl import setup_chat_format
from trl.models import setup_chat_format as from_models
assert setup_chat_format is from_models
tok.chat_template = None
model, tok = setup_chat_format(model, tok)
print(tok.chat_template, len(tok), tok.eos_token, model.get_input_embeddings().weight.shape[0], model.config.eos_token_id)
"""
)


def test_setup_chat_format_breaks_on_1_16_and_is_backported() -> None:
    folders = stack("1.16.0", T5)
    breaks(CHAT_FORMAT, *folders, error="ImportError: cannot import name 'setup_chat_format' from 'trl'")
    upstream = works(CHAT_FORMAT, *stack("0.23.1", T457))  # the last release listed that had it
    assert works(CHAT_FORMAT, *folders) == upstream


def test_setup_chat_format_untouched_on_0_23() -> None:
    untouched(
        CHAT_FORMAT
        + """
import inspect, trl.models.utils as upstream
RECORD = ("trl-setup-chat-format", "trl-models-setup-chat-format-export", "trl-setup-chat-format-export")
assert inspect.getsourcefile(setup_chat_format) == upstream.__file__
""",
        *stack("0.23.1", T457),
    )


EXPERIMENTAL = """
from trl import CPOConfig, CPOTrainer, ORPOConfig, ORPOTrainer
import trl.experimental.cpo as cpo, trl.experimental.orpo as orpo
assert (ORPOConfig, ORPOTrainer, CPOConfig, CPOTrainer) == (orpo.ORPOConfig, orpo.ORPOTrainer, cpo.CPOConfig, cpo.CPOTrainer)
print("ok")
"""


def test_orpo_cpo_exports_break_on_1_16_and_are_aliased() -> None:
    folders = stack("1.16.0", T5)
    breaks(EXPERIMENTAL, *folders, error="ImportError: cannot import name 'CPOConfig' from 'trl'")
    works(EXPERIMENTAL, *folders)


def test_orpo_cpo_exports_untouched_on_0_23() -> None:
    untouched(
        """
from trl import CPOConfig, ORPOConfig
import trl.trainer.orpo_config as upstream
assert ORPOConfig is upstream.ORPOConfig
RECORD = ("trl-orpoconfig-export", "trl-orpotrainer-export", "trl-cpoconfig-export", "trl-cpotrainer-export")
""",
        *stack("0.23.1", T457),
    )


SIMPLE = """
from trl.trainer.utils import SIMPLE_CHAT_TEMPLATE
print(SIMPLE_CHAT_TEMPLATE)
"""


def test_simple_chat_template_breaks_on_1_16_and_is_backported() -> None:
    folders = stack("1.16.0", T5)
    breaks(
        SIMPLE,
        *folders,
        error="ImportError: cannot import name 'SIMPLE_CHAT_TEMPLATE' from 'trl.trainer.utils'",
    )
    assert works(SIMPLE, *folders) == works(SIMPLE, *stack("0.23.1", T457))


def test_simple_chat_template_untouched_on_0_23() -> None:
    untouched(SIMPLE + 'RECORD = "trl-simple-chat-template"\n', *stack("0.23.1", T457))


# --- trl.commands.cli_utils (a whole module) ---------------------------------------------------------------------

CLI = """
import sys
from transformers import TrainingArguments
from trl.commands.cli_utils import DpoScriptArguments, SFTScriptArguments, SftScriptArguments, TrlParser, init_zero_verbose
from trl import ModelConfig
import trl.scripts.utils
assert init_zero_verbose is trl.scripts.utils.init_zero_verbose
sys.argv = ["sft.py", "--model_name_or_path", "m", "--dataset_name", "d", "--max_seq_length", "32", "--output_dir", "o",
            "--report_to", "none"]
args, training_args, model_config = TrlParser((SftScriptArguments, TrainingArguments, ModelConfig)).parse_args_and_config()
print(args.dataset_name, args.max_seq_length, args.config, model_config.model_name_or_path, training_args.output_dir)
"""


def test_cli_utils_module_breaks_on_1_16_and_is_backported() -> None:
    folders = stack("1.16.0", T5)
    breaks(CLI, *folders, error="ModuleNotFoundError: No module named 'trl.commands'")
    assert works(CLI, *folders).split() == ["d", "32", "None", "m", "o"]


def test_cli_utils_module_untouched_on_0_8() -> None:
    code = CLI.replace(", SFTScriptArguments", "").replace(
        "import trl.scripts.utils\nassert init_zero_verbose is trl.scripts.utils.init_zero_verbose\n", ""
    )
    out = untouched(
        code
        + """
import trl.commands.cli_utils as upstream, os
assert upstream.__file__ and os.path.exists(upstream.__file__)
RECORD = "trl-commands-cli-utils"
""",
        *stack("0.8.6", T440),
    )
    assert out.split() == ["d", "32", "None", "m", "o"]


# --- ModelConfig.torch_dtype / trust_remote_code ------------------------------------------------------------------

MODEL_CONFIG = """
import sys, warnings
warnings.simplefilter("ignore")
from transformers import HfArgumentParser
from trl import ModelConfig
c = ModelConfig(model_name_or_path="m", torch_dtype="bfloat16")
(p,) = HfArgumentParser(ModelConfig).parse_args_into_dataclasses(["--model_name_or_path", "m", "--torch_dtype", "float16"])
print(c.torch_dtype, getattr(c, "dtype", c.torch_dtype), p.torch_dtype, ModelConfig().trust_remote_code)
"""


def test_model_config_torch_dtype_breaks_on_1_16_and_is_renamed() -> None:
    folders = stack("1.16.0", T5)
    breaks(
        MODEL_CONFIG,
        *folders,
        error="TypeError: ModelConfig.__init__() got an unexpected keyword argument 'torch_dtype'",
    )
    assert works(MODEL_CONFIG, *folders).split() == ["bfloat16", "bfloat16", "float16", "False"]
    breaks(
        "from trl import ModelConfig\nModelConfig().torch_dtype\n",
        *folders,
        error="AttributeError: 'ModelConfig' object has no attribute 'torch_dtype'",
    )
    breaks(
        "from trl import ModelConfig\nModelConfig().trust_remote_code\n",
        *folders,
        error="AttributeError: 'ModelConfig' object has no attribute 'trust_remote_code'",
    )


def test_model_config_untouched_on_0_23() -> None:
    out = untouched(
        MODEL_CONFIG
        + """
RECORD = ("trl-modelconfig-torch-dtype", "trl-modelconfig-torch-dtype-kwarg", "trl-modelconfig-trust-remote-code")
""",
        *stack("0.23.1", T457),
    )
    assert out.split() == ["bfloat16", "bfloat16", "float16", "False"]


# --- DPOTrainer(tokenizer=..., beta=..., args=TrainingArguments) --------------------------------------------------

DPO = (
    SETUP
    + """
from transformers import TrainingArguments
from trl import DPOTrainer
model.save_pretrained(out + "/base")  # today's DPOTrainer builds its reference model from the path
model = GPT2LMHeadModel.from_pretrained(out + "/base")
pref = datasets.Dataset.from_dict({"prompt": ["hello", "a"], "chosen": [" world", " b"], "rejected": [" a", " hello"]})
args = TrainingArguments(output_dir=out, report_to=[], use_cpu=True, remove_unused_columns=False)
trainer = DPOTrainer(model, None, args=args, beta=0.25, max_length=16, train_dataset=pref, tokenizer=tok)
assert trainer.processing_class is tok
print(type(trainer.args).__name__, trainer.args.beta, trainer.args.max_length)
"""
)


def test_dpo_trainer_old_arguments_break_on_1_16_and_are_moved() -> None:
    folders = stack("1.16.0", T5)
    breaks(DPO, *folders, error="TypeError: DPOTrainer.__init__() got an unexpected keyword argument")
    assert works(DPO, *folders).split() == ["DPOConfig", "0.25", "16"]


# --- RewardTrainer(max_length=...) -> RewardConfig.max_length ------------------------------------------------------

REWARD_MAX_LENGTH = """
import tempfile, warnings, torch, datasets
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast
from trl import RewardConfig, RewardTrainer
vocab = {w: i for i, w in enumerate("[UNK] [PAD] [EOS] hello world a b".split())}
t = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
model = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=len(vocab), n_positions=32, num_labels=1, pad_token_id=1))
warnings.simplefilter("ignore")
# pairs of 1, 2 and 4 words: max_length=3 keeps the first two (today's trl adds an EOS token: 2, 3 and 5)
pairs = datasets.Dataset.from_dict({"chosen": ["hello", "hello world", "hello world a b"], "rejected": ["a", "a b", "b a world hello"]})
args = RewardConfig(output_dir=tempfile.mkdtemp(), report_to=[], use_cpu=True, remove_unused_columns=False)
trainer = RewardTrainer(model=model, args=args, train_dataset=pairs, processing_class=tok, max_length=3)
print(len(trainer.train_dataset), args.max_length == RewardConfig.max_length)
"""


def test_reward_trainer_max_length_breaks_on_1_16_and_filters_as_0_12() -> None:
    folders = stack("1.16.0", T5)
    breaks(
        REWARD_MAX_LENGTH,
        *folders,
        error="TypeError: RewardTrainer.__init__() got an unexpected keyword argument 'max_length'",
    )
    repaired = works(REWARD_MAX_LENGTH, *folders).split()
    # trl 0.12.2 (which took max_length itself) drops the same over-long pair, and leaves the config alone
    upstream = untouched(
        REWARD_MAX_LENGTH + '\nRECORD = "trl-reward-trainer-max-length"\n', *stack("0.12.2", T449)
    ).split()
    assert repaired == upstream == ["2", "True"], (repaired, upstream)


# --- apply_chat_template(example, tokenizer=...) ----------------------------------------------------------------

APPLY = (
    SETUP
    + """
from trl import maybe_apply_chat_template
tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} {% endfor %}"
ex = {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "world"}]}
print(maybe_apply_chat_template(ex, tokenizer=tok))
"""
)


def test_apply_chat_template_tokenizer_breaks_on_1_16_and_is_renamed() -> None:
    folders = stack("1.16.0", T5)
    breaks(
        APPLY, *folders, error="TypeError: maybe_apply_chat_template() missing 1 required positional argument"
    )
    assert works(APPLY, *folders) == works(APPLY, *stack("0.11.4", T445))


def test_apply_chat_template_untouched_on_0_11() -> None:
    untouched(APPLY + '\nRECORD = ("trl-apply-chat-template-tokenizer", "trl-maybe-apply-chat-template-tokenizer")\n',
              *stack("0.11.4", T445))  # fmt: skip


# --- trl.env_utils (a whole module), and removed flags through trl's own HfArgumentParser --------------------

ENV_UTILS = """
from trl.env_utils import strtobool
print(strtobool("Yes"), strtobool("off"))
"""


def test_env_utils_module_breaks_on_1_16_and_is_backported() -> None:
    folders = stack("1.16.0", T5)
    breaks(ENV_UTILS, *folders, error="ModuleNotFoundError: No module named 'trl.env_utils'")
    assert works(ENV_UTILS, *folders).split() == ["True", "False"]


def test_env_utils_module_untouched_on_0_12() -> None:
    untouched(
        ENV_UTILS
        + """
import inspect, trl.env_utils as upstream
assert inspect.getsourcefile(strtobool) == upstream.__file__
RECORD = "trl-env-utils"
""",
        *stack("0.12.2", T449),
    )


TRL_FLAGS = """
import warnings
warnings.simplefilter("ignore")
from trl import KTOConfig, TrlParser
argv = ["--output_dir", "o", "--report_to", "none", "--use_cpu", "True", "--warmup_ratio", "0.1"]
(c,) = TrlParser((KTOConfig,)).parse_args_and_config(argv)
print(c.get_warmup_steps(100))
"""


def test_trl_parser_removed_flags_break_on_1_16_and_are_translated() -> None:
    folders = stack("1.16.0", T5)
    breaks(
        TRL_FLAGS, *folders, error="ValueError: Some specified arguments are not used by the HfArgumentParser"
    )
    assert works(TRL_FLAGS, *folders).strip() == "10"


OWN_CONFIG_OPTION = """
import json, warnings
from trl import ScriptArguments, SFTConfig, TrlParser
parser = TrlParser((ScriptArguments, SFTConfig))
parser.add_argument("--config")  # the script's own option, as odin-train and many scripts add
argv = ["--config", "a.yaml", "--output_dir", "o", "--report_to", "none", "--use_cpu", "True"]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    *parsed, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
print(json.dumps([parsed[-1].config, rest, [str(w.message) for w in caught if "removed from this release" in str(w.message)]]))
"""


def test_a_parsers_own_option_named_like_a_removed_field_is_left_alone() -> None:
    # ScriptArguments.config is gone since trl 0.15.2, but a parser that adds --config itself accepts
    # it: odin_compat must neither drop the flag nor warn that it was removed.
    import json

    folders = stack("1.16.0", T5)
    assert json.loads(works(OWN_CONFIG_OPTION, *folders).strip()) == ["a.yaml", [], []]


# --- modules that moved (trl.trainer.cpo_config -> trl.experimental.cpo.cpo_config, ...) --------------------

MOVED_MODULES = """
import importlib, json, sys, warnings
warnings.simplefilter("ignore")
from odin_compat.repairs.trl import MOVED_MODULES
import trl, trl.trainer, trl.extras
light = sorted(m for m in sys.modules if m.startswith(("trl.experimental.", "trl.generation.")))
out = {}
for old, new, _ in MOVED_MODULES:
    try:
        module = importlib.import_module(old)
    except ImportError as exc:
        out[old] = type(exc).__name__
        continue
    today = importlib.import_module(new)
    names = [n for n, v in vars(today).items() if getattr(v, "__module__", None) == new]
    star = {}
    exec(f"from {old} import *", star)
    same = all(getattr(module, n) is getattr(today, n) for n in names) and names and all(
        star[n] is getattr(today, n) for n in getattr(today, "__all__", [n for n in names if n[0] != "_"])
    )
    out[old] = "same" if same else f"other objects: {names}"
print(json.dumps({"light": light, "modules": out}))
"""


def test_moved_modules_break_on_1_16_and_are_aliased() -> None:
    import json

    from matrix import run

    folders = stack("1.16.0", T5)
    plain = run(MOVED_MODULES, *folders, odin=False)  # the table only: ODIN_COMPAT_DISABLE=1
    assert plain.returncode == 0, plain.stderr[-3000:]
    before = json.loads(plain.stdout.splitlines()[-1])["modules"]
    assert set(before.values()) == {"ModuleNotFoundError"}, before  # every old path fails without odin
    after = json.loads(works(MOVED_MODULES, *folders).splitlines()[-1])
    assert after["light"] == [], after["light"]  # importing the packages imports none of the moved modules
    assert set(after["modules"].values()) == {"same"}, after["modules"]


def test_moved_modules_untouched_where_upstream_has_them() -> None:
    code = """
import warnings
warnings.simplefilter("ignore")
import trl.trainer.cpo_config as m, trl.trainer.orpo_trainer as t, trl.utils as u, os
assert m.__file__ and os.path.exists(m.__file__) and os.path.exists(t.__file__) and os.path.exists(u.__file__)
RECORD = ("trl-module-trainer-cpo-config", "trl-module-trainer-orpo-trainer", "trl-module-utils")
"""
    untouched(code, *stack("0.12.2", T449))
    kto = """
import warnings
warnings.simplefilter("ignore")
import trl.experimental.kto.kto_config as m, os
assert os.path.exists(m.__file__)
RECORD = "trl-module-experimental-kto-kto-config"
"""
    untouched(kto, *stack("1.7.1", T5))
