"""Records for trl.

trl is a lazy package (its own `_LazyModule`, like transformers'): records sit on the module
that defines the thing, and "lazy" records put removed names back into `trl` and `trl.trainer`.
"""

from __future__ import annotations

from odin_compat.records import (
    accepting,
    kwarg_adapter,
    lacks_kwarg,
    lacks_module,
    lazy_export,
    module_alias,
    module_moved,
    not_adapted,
    record,
    relocate,
    rename_kwarg,
    renaming,
    warn_once,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from odin_compat.records import Record

_TOKENIZER_UPSTREAM = (
    "https://github.com/huggingface/trl/pull/2162 (processing_class, 0.12.0); "
    "https://github.com/huggingface/trl/pull/2894 (tokenizer removed, 0.16.0)"
)


def _renamer(old: str, new: str, warn: str | None = None) -> Callable[..., object]:
    """A provider that lets the record's callable take `old` as `new` (the deprecation warning
    names the callable)."""

    def provide(module: ModuleType, record: Record) -> object:
        func = module
        for part in record.name.split("."):
            func = getattr(func, part)
        text = warn.format(name=record.name) if warn else None
        return rename_kwarg(func, old, new, record.id, warn=text)  # type: ignore[arg-type]

    return provide


def _lazy(submodule: str) -> Callable[..., None]:
    """A provider that declares the record's name on a lazy package, resolving through `submodule`."""

    def provide(module: ModuleType, record: Record) -> None:
        lazy_export(module, record.name, submodule)

    return provide


# --- SFTTrainer(tokenizer=...) <-> processing_class ----------------------------------------------

record(
    "trl-sfttrainer-tokenizer",
    "trl.trainer.sft_trainer:SFTTrainer.__init__",
    kind="kwarg",
    fixes="TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'tokenizer'",
    affects="trl>=0.16.0",
    note="(deprecated since 0.12.0)",
    upstream=_TOKENIZER_UPSTREAM,
    remove_when="callers pass processing_class",
    needed=renaming("SFTTrainer.__init__", "tokenizer", "processing_class"),
    proof="test_repairs_trl::test_sfttrainer_tokenizer",
)(
    _renamer(
        "tokenizer",
        "processing_class",
        warn="`tokenizer` is deprecated and removed starting from version 0.16.0 for `SFTTrainer.__init__`. "
        "Use `processing_class` instead (odin_compat renamed it).",
    )
)
record(
    "trl-sfttrainer-processing-class",
    "trl.trainer.sft_trainer:SFTTrainer.__init__",
    kind="kwarg",
    fixes="TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'processing_class'",
    affects="trl<0.12.0",
    note="with code written for newer releases",
    upstream=_TOKENIZER_UPSTREAM,
    remove_when="odin supports only trl>=0.12",
    needed=renaming("SFTTrainer.__init__", "processing_class", "tokenizer"),
    proof=(
        "test_repairs_trl::test_sfttrainer_processing_class",
        "test_repairs_trl::test_sfttrainer_tokenizer_untouched",
    ),
)(_renamer("processing_class", "tokenizer"))


# --- get_peft_config(model_config=...) / get_quantization_config(model_config=...) -> model_args --------

for _helper in ("get_peft_config", "get_quantization_config"):
    record(
        f"trl-{_helper.replace('_', '-')}-model-config",
        f"trl.trainer.utils:{_helper}",
        kind="kwarg",
        fixes=f"TypeError: {_helper}() got an unexpected keyword argument 'model_config'",
        affects="trl>=0.15.0",
        note="(the parameter was renamed model_args)",
        upstream=f"trl v0.12.2 trl/trainer/utils.py ({_helper}(model_config)); "
        f"trl v0.15.2 trl/trainer/utils.py ({_helper}(model_args))",
        remove_when="callers pass the ModelConfig positionally or as model_args",
        needed=renaming(_helper, "model_config", "model_args"),
        proof=(
            "test_repairs_trl::test_peft_and_quantization_config_take_model_config",
            "test_repairs_trl::test_peft_and_quantization_config_untouched_on_0_12",
        ),
    )(_renamer("model_config", "model_args"))


# --- SFTTrainer(dataset_text_field=..., max_seq_length=..., packing=..., ...) -> SFTConfig -------

# The trainer arguments trl 0.12 still took and moved into the config (trl 0.12.2 sft_trainer.py).
_SFT_MOVED = (
    "dataset_text_field", "packing", "max_seq_length", "num_of_sequences", "chars_per_token",
    "dataset_num_proc", "dataset_batch_size", "neftune_noise_alpha", "model_init_kwargs",
    "dataset_kwargs", "eval_packing",
)  # fmt: skip


def _given_config(args: tuple, kwargs: dict, at: int = 2) -> object:
    """The config of a ``Trainer(model, args, ...)`` call, by keyword or at position ``at``.

    ``args[0]`` is the trainer itself: ``at`` is 2 for ``(model, args)``, 3 for ``(model, ref_model, args)``.
    """
    config = kwargs.get("args")
    if config is None and len(args) > at:
        config = args[at]
    return config


def _pass_config(args: tuple, kwargs: dict, config: object, at: int = 2) -> tuple:
    """The call's arguments with ``config`` where the caller put theirs."""
    if len(args) > at:
        return args[:at] + (config,) + args[at + 1 :], kwargs
    kwargs["args"] = config
    return args, kwargs


def _as_config(cls: type, training_args: object) -> object:
    """A trl config with a plain ``TrainingArguments``' values, as trl 0.12 built one."""
    import dataclasses

    as_dict = training_args.to_dict()
    as_dict.update({k: getattr(training_args, k) for k in as_dict if k.endswith("_token")})
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: v for k, v in as_dict.items() if k in names})


@record(
    "trl-sfttrainer-config-args",
    "trl.trainer.sft_trainer:SFTTrainer.__init__",
    kind="kwarg",
    fixes="TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'dataset_text_field' "
    f"(also {', '.join(repr(k) for k in _SFT_MOVED if k != 'dataset_text_field')})",
    affects="trl>=0.13.0",
    note="(deprecated in 0.12)",
    upstream="https://github.com/huggingface/trl/pull/2306; https://github.com/unslothai/unsloth/issues/1264; "
    "trl v0.12.2 trl/trainer/sft_trainer.py (the moves this adapter repeats)",
    remove_when="callers pass these in SFTConfig",
    needed=lacks_kwarg("SFTTrainer.__init__", "dataset_text_field", given="args"),
    proof="test_repairs_trl::test_sfttrainer_config_args",
)
def _sft_config_args(module: ModuleType, record: Record) -> object:
    import dataclasses

    func = module.SFTTrainer.__init__
    takes = accepting(func)
    missing = [k for k in _SFT_MOVED if not takes(k)]
    SFTConfig = module.SFTConfig

    def adapt(args: tuple, kwargs: dict) -> tuple:
        moved = {k: kwargs.pop(k) for k in missing if k in kwargs}
        if not moved:
            return args, kwargs
        config = _given_config(args, kwargs)
        # As trl 0.12.2 did: no config -> SFTConfig(output_dir="tmp_trainer"); a plain
        # TrainingArguments -> an SFTConfig with the same values.
        if config is None:
            config = SFTConfig(output_dir="tmp_trainer")
        elif config.__class__.__name__ == "TrainingArguments":
            config = _as_config(SFTConfig, config)
        fields = {f.name for f in dataclasses.fields(config)}
        ignored = []
        for key, value in moved.items():
            if key == "max_seq_length" and key not in fields and "max_length" in fields:
                key = "max_length"  # trl >= 0.20 renamed the config field
            if key in fields:
                setattr(config, key, value)
            else:
                ignored.append(key)
        args, kwargs = _pass_config(args, kwargs, config)
        warn_once(
            record.id,
            f"You passed {sorted(moved)} to the SFTTrainer; trl 0.13 moved them into `SFTConfig`. "
            "odin_compat set them on the config; pass them to `SFTConfig` instead."
            + (f" This trl has no config field for {ignored}: they were ignored." if ignored else ""),
        )
        return args, kwargs

    return kwarg_adapter(func, adapt, record.id)


# --- SFTConfig(max_seq_length=...) -> max_length ---------------------------------------------------

record(
    "trl-sftconfig-max-seq-length",
    "trl.trainer.sft_config:SFTConfig.__init__",
    kind="kwarg",
    fixes="TypeError: SFTConfig.__init__() got an unexpected keyword argument 'max_seq_length'",
    affects="trl>=0.20.0",
    note="(max_length since 0.16.0, max_seq_length deprecated there)",
    upstream="https://github.com/huggingface/trl/pull/3704; trl v0.19.1 trl/trainer/sft_config.py",
    remove_when="callers pass max_length",
    needed=renaming("SFTConfig.__init__", "max_seq_length", "max_length"),
    proof="test_repairs_trl::test_sftconfig_max_seq_length",
)(
    _renamer(
        "max_seq_length",
        "max_length",
        warn="`max_seq_length` is deprecated and was removed in version 0.20.0. Use `max_length` instead "
        "(odin_compat renamed it).",
    )
)


# --- DataCollatorForCompletionOnlyLM ---------------------------------------------------------------

_DCCO_UPSTREAM = "https://github.com/huggingface/trl/blob/v0.19.1/trl/trainer/utils.py (removed by PR #3704)"


@record(
    "trl-completion-only-collator",
    "trl.trainer.utils:DataCollatorForCompletionOnlyLM",
    kind="backport",
    fixes="ImportError: cannot import name 'DataCollatorForCompletionOnlyLM' from 'trl.trainer.utils'",
    affects="trl>=0.20.0",
    upstream=_DCCO_UPSTREAM,
    remove_when="callers use SFTConfig(completion_only_loss=True)",
    proof="test_repairs_trl::test_completion_only_collator",
)
def _completion_only_collator(module: ModuleType, record: Record) -> type:
    from odin_compat.repairs._vendor import trl_0_19

    return relocate(trl_0_19.DataCollatorForCompletionOnlyLM, module.__name__)  # type: ignore[return-value]


record(
    "trl-trainer-completion-only-collator-export",
    "trl.trainer:DataCollatorForCompletionOnlyLM",
    kind="lazy",
    fixes="ImportError: cannot import name 'DataCollatorForCompletionOnlyLM' from 'trl.trainer'",
    affects="trl>=0.20.0",
    upstream=_DCCO_UPSTREAM,
    remove_when="callers use SFTConfig(completion_only_loss=True)",
    proof="test_repairs_trl::test_completion_only_collator",
)(_lazy("utils"))
record(
    "trl-completion-only-collator-export",
    "trl:DataCollatorForCompletionOnlyLM",
    kind="lazy",
    fixes="ImportError: cannot import name 'DataCollatorForCompletionOnlyLM' from 'trl'",
    affects="trl>=0.20.0",
    upstream=_DCCO_UPSTREAM,
    remove_when="callers use SFTConfig(completion_only_loss=True)",
    proof="test_repairs_trl::test_completion_only_collator",
)(_lazy("trainer"))


# --- get_kbit_device_map -----------------------------------------------------------------------------

_KBIT_UPSTREAM = "https://github.com/huggingface/trl/blob/v1.7.1/trl/trainer/utils.py (last release listed in docs/api-diff.md that had it)"


@record(
    "trl-get-kbit-device-map",
    "trl.trainer.utils:get_kbit_device_map",
    kind="backport",
    fixes="ImportError: cannot import name 'get_kbit_device_map' from 'trl.trainer.utils'",
    affects="trl>=1.8",
    note="(removed after 1.7.1; 1.16.0 lacks it)",
    upstream=_KBIT_UPSTREAM,
    remove_when="callers pass device_map themselves",
    proof="test_repairs_trl::test_get_kbit_device_map",
)
def _get_kbit_device_map(module: ModuleType, record: Record) -> object:
    from odin_compat.repairs._vendor import trl_1_7

    return relocate(trl_1_7.get_kbit_device_map, module.__name__)


record(
    "trl-trainer-get-kbit-device-map-export",
    "trl.trainer:get_kbit_device_map",
    kind="lazy",
    fixes="ImportError: cannot import name 'get_kbit_device_map' from 'trl.trainer'",
    affects="trl>=1.8",
    note="(removed after 1.7.1; 1.16.0 lacks it)",
    upstream=_KBIT_UPSTREAM,
    remove_when="callers pass device_map themselves",
    proof="test_repairs_trl::test_get_kbit_device_map",
)(_lazy("utils"))
record(
    "trl-get-kbit-device-map-export",
    "trl:get_kbit_device_map",
    kind="lazy",
    fixes="ImportError: cannot import name 'get_kbit_device_map' from 'trl'",
    affects="trl>=1.8",
    note="(removed after 1.7.1; 1.16.0 lacks it)",
    upstream=_KBIT_UPSTREAM,
    remove_when="callers pass device_map themselves",
    proof="test_repairs_trl::test_get_kbit_device_map",
)(_lazy("trainer.utils"))


# --- setup_chat_format ---------------------------------------------------------------------------------

_CHAT_UPSTREAM = (
    "https://github.com/huggingface/trl/blob/v0.23.1/trl/models/utils.py (deprecated for clone_chat_template)"
)


@record(
    "trl-setup-chat-format",
    "trl.models.utils:setup_chat_format",
    kind="backport",
    fixes="ImportError: cannot import name 'setup_chat_format' from 'trl.models.utils'",
    affects="trl>=0.24",
    note="(removed after 0.23.1; 0.29.1 lacks it)",
    upstream=_CHAT_UPSTREAM,
    remove_when="callers use clone_chat_template",
    proof="test_repairs_trl::test_setup_chat_format",
)
def _setup_chat_format(module: ModuleType, record: Record) -> object:
    from odin_compat.repairs._vendor import trl_0_23

    relocate(trl_0_23.ChatMlSpecialTokens, module.__name__)
    return relocate(trl_0_23.setup_chat_format, module.__name__)


@record(
    "trl-models-setup-chat-format-export",
    "trl.models:setup_chat_format",
    kind="alias",
    fixes="ImportError: cannot import name 'setup_chat_format' from 'trl.models'",
    affects="trl>=0.24",
    note="(removed after 0.23.1; 0.29.1 lacks it)",
    upstream=_CHAT_UPSTREAM,
    remove_when="callers use clone_chat_template",
    proof="test_repairs_trl::test_setup_chat_format",
)
def _from_models_utils(module: ModuleType, record: Record) -> object:
    from trl.models import utils

    return utils.setup_chat_format


record(
    "trl-setup-chat-format-export",
    "trl:setup_chat_format",
    kind="lazy",
    fixes="ImportError: cannot import name 'setup_chat_format' from 'trl'",
    affects="trl>=0.24",
    note="(removed after 0.23.1; 0.29.1 lacks it)",
    upstream=_CHAT_UPSTREAM,
    remove_when="callers use clone_chat_template",
    proof="test_repairs_trl::test_setup_chat_format",
)(_lazy("models.utils"))


# --- ORPOConfig / ORPOTrainer / CPOConfig / CPOTrainer: moved to trl.experimental -------------------------

record(
    "trl-orpoconfig-export",
    "trl:ORPOConfig",
    kind="lazy",
    fixes="ImportError: cannot import name 'ORPOConfig' from 'trl'",
    affects="trl>=0.24",
    note="(0.29.1 lacks it; the same class lives in trl.experimental.orpo)",
    upstream="trl v1.16.0 trl/experimental/orpo/__init__.py; trl v0.23.1 trl/__init__.py (last top-level export listed)",
    remove_when="callers import from trl.experimental.orpo",
    proof="test_repairs_trl::test_orpo_cpo_exports",
)(_lazy("experimental.orpo"))
record(
    "trl-orpotrainer-export",
    "trl:ORPOTrainer",
    kind="lazy",
    fixes="ImportError: cannot import name 'ORPOTrainer' from 'trl'",
    affects="trl>=0.24",
    note="(0.29.1 lacks it; the same class lives in trl.experimental.orpo)",
    upstream="trl v1.16.0 trl/experimental/orpo/__init__.py; trl v0.23.1 trl/__init__.py (last top-level export listed)",
    remove_when="callers import from trl.experimental.orpo",
    proof="test_repairs_trl::test_orpo_cpo_exports",
)(_lazy("experimental.orpo"))
record(
    "trl-cpoconfig-export",
    "trl:CPOConfig",
    kind="lazy",
    fixes="ImportError: cannot import name 'CPOConfig' from 'trl'",
    affects="trl>=0.24",
    note="(0.29.1 lacks it; the same class lives in trl.experimental.cpo)",
    upstream="trl v1.16.0 trl/experimental/cpo/__init__.py; trl v0.23.1 trl/__init__.py (last top-level export listed)",
    remove_when="callers import from trl.experimental.cpo",
    proof="test_repairs_trl::test_orpo_cpo_exports",
)(_lazy("experimental.cpo"))
record(
    "trl-cpotrainer-export",
    "trl:CPOTrainer",
    kind="lazy",
    fixes="ImportError: cannot import name 'CPOTrainer' from 'trl'",
    affects="trl>=0.24",
    note="(0.29.1 lacks it; the same class lives in trl.experimental.cpo)",
    upstream="trl v1.16.0 trl/experimental/cpo/__init__.py; trl v0.23.1 trl/__init__.py (last top-level export listed)",
    remove_when="callers import from trl.experimental.cpo",
    proof="test_repairs_trl::test_orpo_cpo_exports",
)(_lazy("experimental.cpo"))


# --- trl.commands.cli_utils: the module scripts imported their argument dataclasses from ---------------------

_CLI_NAMES = (
    "TrlParser", "init_zero_verbose", "SftScriptArguments", "DpoScriptArguments", "SFTScriptArguments",
    "DPOScriptArguments", "RewardScriptArguments", "YamlConfigParser",
)  # fmt: skip


def _cli_utils_namespace() -> dict[str, object]:
    from trl.scripts import utils as scripts_utils

    from odin_compat.repairs._vendor import trl_0_8
    from odin_compat.repairs._vendor import trl_0_12_cli_utils as v12

    classes = (trl_0_8.SftScriptArguments, trl_0_8.DpoScriptArguments, v12.SFTScriptArguments,
               v12.DPOScriptArguments, v12.RewardScriptArguments, v12.YamlConfigParser, v12.TrlParser)  # fmt: skip
    for cls in classes:
        cls.__module__ = "trl.commands.cli_utils"
    # init_zero_verbose moved: the same object as trl.scripts.utils'
    return {"init_zero_verbose": scripts_utils.init_zero_verbose, **{cls.__name__: cls for cls in classes}}


# A backport of a whole module. Kind "wrap" only because that kind honours `needed`: the package's
# `commands` attribute is absent until the real submodule is imported, so the presence check of a
# "backport" record cannot see the upstream module (trl < 0.13) and would shadow it.
@record(
    "trl-commands-cli-utils",
    "trl:commands",
    kind="wrap",
    fixes="ModuleNotFoundError: No module named 'trl.commands'",
    affects="trl>=0.13",
    note="(init_zero_verbose moved to trl.scripts.utils, whose TrlParser refuses a `config` field; the script dataclasses were removed)",
    upstream="https://github.com/huggingface/trl/blob/v0.8.6/trl/commands/cli_utils.py; "
    "https://github.com/huggingface/trl/blob/v0.12.2/trl/commands/cli_utils.py; trl v1.16.0 trl/scripts/utils.py",
    remove_when="callers import from trl (TrlParser, ScriptArguments)",
    needed=lacks_module("trl.commands"),
    proof="test_repairs_trl::test_cli_utils_module",
)
def _commands(module: ModuleType, record: Record) -> object:
    import sys
    import types

    package = types.ModuleType("trl.commands", "Backported by odin_compat: trl.commands (removed from trl).")
    package.__path__ = []  # a package, so `trl.commands.cli_utils` resolves
    cli_utils = types.ModuleType(
        "trl.commands.cli_utils", "Backported by odin_compat: trl.commands.cli_utils."
    )
    cli_utils.__all__ = list(_CLI_NAMES)
    cache: dict[str, object] = {}

    def __getattr__(name: str) -> object:  # built on first use: importing trl stays as light as upstream
        if name not in _CLI_NAMES:
            raise AttributeError(f"module 'trl.commands.cli_utils' has no attribute {name!r}")
        if not cache:
            cache.update(_cli_utils_namespace())
        value = cache[name]
        setattr(cli_utils, name, value)
        return value

    cli_utils.__getattr__ = __getattr__  # type: ignore[attr-defined]
    package.cli_utils = cli_utils  # type: ignore[attr-defined]
    sys.modules.setdefault("trl.commands", package)
    sys.modules.setdefault("trl.commands.cli_utils", cli_utils)
    return sys.modules["trl.commands"]


# --- SFTConfig --max_seq_length as a command-line flag (see transformers-hfargparser-removed-flags) ---------


def _register_flags() -> None:
    from odin_compat.repairs.transformers import FLAGS

    FLAGS.setdefault(
        "max_seq_length",
        ("SFTConfig", True, lambda v, g: [] if "max_length" in g else ["--max_length", str(v)]),
    )
    FLAGS.setdefault(
        "torch_dtype", ("ModelConfig", True, lambda v, g: [] if "dtype" in g else ["--dtype", str(v)])
    )


_register_flags()


# --- ModelConfig.torch_dtype -> dtype ----------------------------------------------------------------------

_DTYPE_UPSTREAM = "https://github.com/huggingface/trl/blob/v0.23.1/trl/trainer/model_config.py (torch_dtype deprecated for dtype)"


@record(
    "trl-modelconfig-torch-dtype",
    "trl.trainer.model_config:ModelConfig.torch_dtype",
    kind="backport",
    fixes="AttributeError: 'ModelConfig' object has no attribute 'torch_dtype'",
    affects="trl>=0.27",
    note="(a deprecated field since 0.22)",
    upstream=_DTYPE_UPSTREAM,
    remove_when="callers read model_args.dtype",
    proof="test_repairs_trl::test_model_config",
)
def _torch_dtype_property(module: ModuleType, record: Record) -> object:
    # trl 0.23.1 (trl/trainer/model_config.py) kept `torch_dtype` as a deprecated field copied into `dtype`;
    # the attribute reads and writes `dtype`, the one field today's ModelConfig has.
    def torch_dtype(self):  # noqa: ANN001, ANN202
        warn_once(
            record.id,
            "`torch_dtype` is deprecated and was removed in version 0.27.0, please use `dtype` instead "
            "(odin_compat read it from `dtype`).",
        )
        return self.dtype

    def set_torch_dtype(self, value) -> None:  # noqa: ANN001
        self.dtype = value

    return property(torch_dtype, set_torch_dtype)


record(
    "trl-modelconfig-torch-dtype-kwarg",
    "trl.trainer.model_config:ModelConfig.__init__",
    kind="kwarg",
    fixes="TypeError: ModelConfig.__init__() got an unexpected keyword argument 'torch_dtype'",
    affects="trl>=0.27",
    upstream=_DTYPE_UPSTREAM,
    remove_when="callers pass dtype",
    needed=renaming("ModelConfig.__init__", "torch_dtype", "dtype"),
    proof="test_repairs_trl::test_model_config",
)(
    _renamer(
        "torch_dtype",
        "dtype",
        warn="`torch_dtype` is deprecated and was removed in version 0.27.0, please use `dtype` instead "
        "(odin_compat renamed it).",
    )
)


# --- ModelConfig.trust_remote_code ---------------------------------------------------------------------------


@record(
    "trl-modelconfig-trust-remote-code",
    "trl.trainer.model_config:ModelConfig.trust_remote_code",
    kind="backport",
    fixes="AttributeError: 'ModelConfig' object has no attribute 'trust_remote_code'",
    affects="trl>=1.0",
    note="(the 1.7.1 release lacks it)",
    upstream="https://github.com/huggingface/trl/blob/v0.29.1/trl/trainer/model_config.py",
    remove_when="callers pass trust_remote_code to from_pretrained themselves",
    proof="test_repairs_trl::test_model_config",
)
def _trust_remote_code_property(module: ModuleType, record: Record) -> object:
    # trl 0.29.1's field (trl/trainer/model_config.py): `trust_remote_code: bool = False`. Reads give the value
    # set on the instance, else that default; nothing else in today's trl reads it.
    def trust_remote_code(self):  # noqa: ANN001, ANN202
        return vars(self).get("_odin_trust_remote_code", False)

    def set_trust_remote_code(self, value) -> None:  # noqa: ANN001
        vars(self)["_odin_trust_remote_code"] = value

    return property(trust_remote_code, set_trust_remote_code)


# --- <Trainer>(tokenizer=...) -> processing_class, for the other trl trainers ---------------------------------

_OTHER_TRAINER_TOKENIZER = _renamer(
    "tokenizer",
    "processing_class",
    warn="`tokenizer` is deprecated and removed for `{name}`. Use `processing_class` instead (odin_compat renamed it).",
)
# record id -> where the trainer lives, and the test that proves it (the others: tests/test_proofs.py UNPROVEN)
_OTHER_TRAINERS = {
    "trl-dpo-trainer-tokenizer": ("trl.trainer.dpo_trainer:DPOTrainer", "test_repairs_trl::test_dpo_trainer_old_arguments"),
    "trl-kto-trainer-tokenizer": ("trl.trainer.kto_trainer:KTOTrainer", ()),
    "trl-reward-trainer-tokenizer": ("trl.trainer.reward_trainer:RewardTrainer", ()),
    "trl-orpo-trainer-tokenizer": ("trl.trainer.orpo_trainer:ORPOTrainer", ()),
    "trl-orpo-trainer-exp-tokenizer": ("trl.experimental.orpo.orpo_trainer:ORPOTrainer", ()),
    "trl-cpo-trainer-tokenizer": ("trl.trainer.cpo_trainer:CPOTrainer", ()),
    "trl-cpo-trainer-exp-tokenizer": ("trl.experimental.cpo.cpo_trainer:CPOTrainer", ()),
}  # fmt: skip
for _id, (_where, _proof) in _OTHER_TRAINERS.items():
    _cls = _where.rpartition(":")[2]
    record(
        _id,
        f"{_where}.__init__",
        kind="kwarg",
        fixes=f"TypeError: {_cls}.__init__() got an unexpected keyword argument 'tokenizer'",
        affects="trl>=0.16.0",
        note="(processing_class since 0.12.0; 0.15.2 is the last release listed that took tokenizer)",
        upstream=_TOKENIZER_UPSTREAM,
        remove_when="callers pass processing_class",
        needed=renaming(f"{_cls}.__init__", "tokenizer", "processing_class"),
        proof=_proof,
    )(_OTHER_TRAINER_TOKENIZER)


# --- SIMPLE_CHAT_TEMPLATE ----------------------------------------------------------------------------------


@record(
    "trl-simple-chat-template",
    "trl.trainer.utils:SIMPLE_CHAT_TEMPLATE",
    kind="backport",
    fixes="ImportError: cannot import name 'SIMPLE_CHAT_TEMPLATE' from 'trl.trainer.utils'",
    affects="trl>=0.24",
    note="(0.29.1 lacks it)",
    upstream="https://github.com/huggingface/trl/blob/v0.23.1/trl/trainer/utils.py",
    remove_when="callers set their own chat template",
    proof="test_repairs_trl::test_simple_chat_template",
)
def _simple_chat_template(module: ModuleType, record: Record) -> str:
    from odin_compat.repairs._vendor import trl_0_23

    return trl_0_23.SIMPLE_CHAT_TEMPLATE


# --- DPOTrainer(beta=..., max_length=..., ...) -> DPOConfig ----------------------------------------------------

# The trainer arguments trl 0.12.2's DPOTrainer still took (deprecated) and moved into DPOConfig.
_DPO_MOVED = (
    "beta", "label_smoothing", "loss_type", "label_pad_token_id", "padding_value", "truncation_mode",
    "max_length", "max_prompt_length", "max_target_length", "is_encoder_decoder", "disable_dropout",
    "generate_during_eval", "precompute_ref_log_probs", "dataset_num_proc", "model_init_kwargs",
    "ref_model_init_kwargs", "model_adapter_name", "ref_adapter_name", "reference_free", "force_use_ref_model",
)  # fmt: skip


@record(
    "trl-dpotrainer-config-args",
    "trl.trainer.dpo_trainer:DPOTrainer.__init__",
    kind="kwarg",
    fixes="TypeError: DPOTrainer.__init__() got an unexpected keyword argument 'beta' "
    f"(also {', '.join(repr(k) for k in _DPO_MOVED if k != 'beta')}; and args=TrainingArguments)",
    affects="trl>=0.13.0",
    note="(deprecated in 0.12; trl<=0.8 took them with a TrainingArguments)",
    upstream="trl v0.12.2 trl/trainer/dpo_trainer.py (the moves this adapter repeats); "
    "trl v0.8.6 trl/trainer/dpo_trainer.py",
    remove_when="callers pass these in DPOConfig",
    needed=lacks_kwarg("DPOTrainer.__init__", "beta", given="args"),
    proof="test_repairs_trl::test_dpo_trainer_old_arguments",
)
def _dpo_config_args(module: ModuleType, record: Record) -> object:
    import dataclasses

    func = module.DPOTrainer.__init__
    takes = accepting(func)
    missing = [k for k in _DPO_MOVED if not takes(k)]

    def adapt(args: tuple, kwargs: dict) -> tuple:
        moved = {k: kwargs.pop(k) for k in missing if k in kwargs}
        config = _given_config(args, kwargs, at=3)  # DPOTrainer(model, ref_model, args, ...)
        plain = config is not None and not isinstance(config, module.DPOConfig)
        if not moved and not plain:
            return args, kwargs
        from trl import DPOConfig

        # As trl 0.12.2 did: no config -> DPOConfig(output_dir="tmp_trainer"); trl <= 0.8 took a plain
        # TrainingArguments -> a DPOConfig with the same values.
        if config is None:
            config = DPOConfig(output_dir="tmp_trainer")
        elif plain:
            config = _as_config(DPOConfig, config)
        fields = {f.name for f in dataclasses.fields(config)}
        ignored = []
        for key, value in moved.items():
            if key in fields:
                setattr(config, key, value)
            else:
                ignored.append(key)
        args, kwargs = _pass_config(args, kwargs, config, at=3)
        warn_once(
            record.id,
            f"You passed {sorted(moved) or 'a TrainingArguments'} to the DPOTrainer; trl moved these into "
            "`DPOConfig`. odin_compat set them on a DPOConfig; pass a `DPOConfig` instead."
            + (f" This trl has no config field for {ignored}: they were ignored." if ignored else ""),
        )
        return args, kwargs

    return kwarg_adapter(func, adapt, record.id)


# --- RewardTrainer(max_length=...) -> RewardConfig.max_length -------------------------------------------------


@record(
    "trl-reward-trainer-max-length",
    "trl.trainer.reward_trainer:RewardTrainer.__init__",
    kind="kwarg",
    fixes="TypeError: RewardTrainer.__init__() got an unexpected keyword argument 'max_length'",
    affects="trl>=0.13.0",
    note="(deprecated in 0.12 for RewardConfig.max_length, the same filter of over-long pairs today)",
    upstream="trl v0.12.2 trl/trainer/reward_trainer.py ('Please use the `RewardConfig` to set `max_length` "
    "instead'); trl v1.16.0 trl/trainer/reward_config.py (max_length)",
    remove_when="callers pass max_length in RewardConfig",
    needed=lacks_kwarg("RewardTrainer.__init__", "max_length", given="args"),
    proof="test_repairs_trl::test_reward_trainer_max_length",
)
def _reward_max_length(module: ModuleType, record: Record) -> object:
    import copy
    import dataclasses

    func = module.RewardTrainer.__init__

    def adapt(args: tuple, kwargs: dict) -> tuple:
        max_length = kwargs.pop("max_length", None)
        if max_length is None:  # trl 0.12.2 did nothing with max_length=None
            return args, kwargs
        config = _given_config(args, kwargs)
        if config is None:
            raise TypeError(  # trl 0.12.2 read args.max_length, and failed without args
                "RewardTrainer(max_length=...) needs `args`; pass a `RewardConfig(max_length=...)` instead."
            )
        default = {f.name: f.default for f in dataclasses.fields(module.RewardConfig)}["max_length"]
        if getattr(config, "max_length", default) not in (default, max_length):
            # trl 0.12.2's check; its config default was None, today's is `default`
            raise ValueError(
                "You cannot specify both `max_length` and `args.max_length`. Please use the `RewardConfig` to "
                "set `max_length` once."
            )
        if not isinstance(config, module.RewardConfig):  # trl 0.12.2 also took a plain TrainingArguments
            config = _as_config(module.RewardConfig, config)
        else:
            config = copy.copy(config)  # the caller's config stays as it was (trl 0.12.2 left it alone)
        config.max_length = max_length
        args, kwargs = _pass_config(args, kwargs, config)
        warn_once(
            record.id,
            "The `max_length` argument is deprecated and will be removed in a future version. Please use the "
            "`RewardConfig` to set `max_length` instead (odin_compat set it on the config).",
        )
        return args, kwargs

    return kwarg_adapter(func, adapt, record.id)


# --- apply_chat_template(example, tokenizer=...) -> processing_class --------------------------------------------

record(
    "trl-apply-chat-template-tokenizer",
    "trl.data_utils:apply_chat_template",
    kind="kwarg",
    fixes="TypeError: apply_chat_template() missing 1 required positional argument: 'processing_class' "
    "(called with tokenizer=...)",
    affects="trl>=0.12.0",
    note="(the parameter was named tokenizer before)",
    upstream="trl v0.11.4 trl/data_utils.py; https://github.com/huggingface/trl/pull/2162 (processing_class)",
    remove_when="callers pass processing_class",
    needed=renaming("apply_chat_template", "tokenizer", "processing_class"),
    proof="test_repairs_trl::test_apply_chat_template",
)(_renamer("tokenizer", "processing_class"))
record(
    "trl-maybe-apply-chat-template-tokenizer",
    "trl.data_utils:maybe_apply_chat_template",
    kind="kwarg",
    fixes="TypeError: maybe_apply_chat_template() missing 1 required positional argument: 'processing_class' "
    "(called with tokenizer=...)",
    affects="trl>=0.12.0",
    note="(the parameter was named tokenizer before)",
    upstream="trl v0.11.4 trl/data_utils.py; https://github.com/huggingface/trl/pull/2162 (processing_class)",
    remove_when="callers pass processing_class",
    needed=renaming("maybe_apply_chat_template", "tokenizer", "processing_class"),
    proof="test_repairs_trl::test_apply_chat_template",
)(_renamer("tokenizer", "processing_class"))


# --- trl.env_utils (a whole module: strtobool) ----------------------------------------------------------------


# Kind "wrap" for its `needed` gate, as trl-commands-cli-utils above.
@record(
    "trl-env-utils",
    "trl:env_utils",
    kind="wrap",
    fixes="ModuleNotFoundError: No module named 'trl.env_utils'",
    affects="trl>=0.13",
    note="(0.15.2 lacks the module)",
    upstream="https://github.com/huggingface/trl/blob/v0.12.2/trl/env_utils.py",
    remove_when="callers use their own strtobool",
    needed=lacks_module("trl.env_utils"),
    proof="test_repairs_trl::test_env_utils_module",
)
def _env_utils(module: ModuleType, record: Record) -> object:
    import sys
    import types

    from odin_compat.repairs._vendor import trl_0_12

    env_utils = types.ModuleType(
        "trl.env_utils", "Backported by odin_compat: trl.env_utils (removed from trl)."
    )
    env_utils.strtobool = relocate(trl_0_12.strtobool, "trl.env_utils")  # type: ignore[attr-defined]
    env_utils.__all__ = ["strtobool"]
    sys.modules.setdefault("trl.env_utils", env_utils)
    return sys.modules["trl.env_utils"]


# --- modules that moved: the old module path hands out today's module's objects ------------------------------

# (old module, today's module, the first release of the API diff without the old one). Each old module's
# classes and functions are all defined in today's module (docs/api-diff.md: moved modules).
MOVED_MODULES = (
    ("trl.trainer.cpo_config", "trl.experimental.cpo.cpo_config", "0.29.1"),
    ("trl.trainer.cpo_trainer", "trl.experimental.cpo.cpo_trainer", "0.29.1"),
    ("trl.trainer.gkd_config", "trl.experimental.gkd.gkd_config", "0.29.1"),
    ("trl.trainer.gkd_trainer", "trl.experimental.gkd.gkd_trainer", "0.29.1"),
    ("trl.trainer.online_dpo_config", "trl.experimental.online_dpo.online_dpo_config", "0.29.1"),
    ("trl.trainer.online_dpo_trainer", "trl.experimental.online_dpo.online_dpo_trainer", "0.29.1"),
    ("trl.trainer.orpo_config", "trl.experimental.orpo.orpo_config", "0.29.1"),
    ("trl.trainer.orpo_trainer", "trl.experimental.orpo.orpo_trainer", "0.29.1"),
    ("trl.experimental.kto.kto_config", "trl.trainer.kto_config", "1.16.0"),
    ("trl.experimental.kto.kto_trainer", "trl.trainer.kto_trainer", "1.16.0"),
    ("trl.experimental.distillation.distillation_config", "trl.trainer.distillation_config", "1.16.0"),
    ("trl.experimental.distillation.distillation_trainer", "trl.trainer.distillation_trainer", "1.16.0"),
    ("trl.extras.vllm_client", "trl.generation.vllm_client", "0.29.1"),
    ("trl.utils", "trl.scripts.utils", "0.15.2"),
)


def _module_alias(old: str, new: str) -> Callable[..., object]:
    def provide(module: ModuleType, record: Record) -> object:
        return module_alias(old, new)

    return provide


# Kind "wrap" for its `needed` gate, as trl-commands-cli-utils above: an upstream submodule that is not
# imported yet is no attribute of its package, and must never be shadowed.
for _old, _new, _gone_in in MOVED_MODULES:
    _parent, _, _leaf = _old.rpartition(".")
    record(
        "trl-module-" + _old.removeprefix("trl.").replace(".", "-").replace("_", "-"),
        f"{_parent}:{_leaf}",
        kind="wrap",
        fixes=f"ModuleNotFoundError: No module named '{_old}'",
        affects=f"trl>={_gone_in}",
        note=f"(the same module's objects live in {_new})",
        upstream=f"trl v1.16.0 {_new.replace('.', '/')}.py (docs/api-diff.md: moved modules)",
        remove_when=f"callers import from {_new}",
        needed=module_moved(_old, _new),
        proof="test_repairs_trl::test_moved_modules",
    )(_module_alias(_old, _new))


# --- removed flags through trl's own copy of HfArgumentParser (trl/scripts/_hf_argparser.py) ------------------


@record(
    "trl-hfargparser-removed-flags",
    "trl.scripts._hf_argparser:HfArgumentParser.parse_args_into_dataclasses",
    kind="wrap",
    fixes="ValueError: Some specified arguments are not used by the HfArgumentParser: ['--warmup_ratio', ...] "
    "(TrlParser, which parses with trl's own copy of HfArgumentParser)",
    affects="trl>=1.0",
    note="(trl 1.16.0 parses with its own copy, trl/scripts/_hf_argparser.py)",
    upstream="trl v1.16.0 trl/scripts/_hf_argparser.py; see transformers-hfargparser-removed-flags",
    remove_when="callers pass the replacement flags",
    needed=not_adapted(
        "HfArgumentParser.parse_args_into_dataclasses", "transformers-hfargparser-removed-flags"
    ),
    proof="test_repairs_trl::test_trl_parser_removed_flags",
)
def _trl_parse_args(module: ModuleType, record: Record) -> object:
    from odin_compat.repairs.transformers import _parse_args

    return _parse_args(module, record)
