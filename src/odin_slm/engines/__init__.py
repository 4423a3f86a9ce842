"""Training engines behind one small interface: each turns a :class:`TrainJob` into a :class:`TrainResult`.

- ``trl`` (:mod:`odin_slm.engines.trl`): TRL's ``SFTTrainer``;
- ``loop`` (:mod:`odin_slm.engines.loop`): a hand-written accelerate loop with the same arithmetic;
- ``unsloth`` (:mod:`odin_slm.engines.unsloth`): unsloth's model loading and LoRA, trained by ``SFTTrainer``.

An engine also decides how the model is loaded and wrapped with LoRA, and which options it refuses,
so that the recipe (:mod:`odin_slm.train`) never asks which engine it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odin_slm.config import ConfigError


@dataclass
class TrainJob:
    """Everything an engine trains with: the model, tokenized rows, the arguments and the run's controls."""

    model: Any
    tokenizer: Any
    train_rows: list[dict]
    eval_rows: list[dict] | None
    collator: Any  # odin's padding collator, which counts the training tokens
    args: Any  # TRL's SFTConfig
    stop: Any  # truthy once SIGINT/SIGTERM arrived: save a checkpoint and stop
    resume: str | None = None
    callbacks: list[Any] = field(default_factory=list)  # transformers TrainerCallbacks
    lora: bool = False
    fast_levers: bool = False


@dataclass
class TrainResult:
    """What every engine returns."""

    model: Any
    global_step: int
    losses: list[dict] = field(default_factory=list)  # [{"step", "loss"}]
    eval_losses: list[dict] = field(default_factory=list)  # [{"step", "eval_loss"}]
    log_history: list[dict] = field(default_factory=list)
    train_sequences: int | None = None  # rows trained on per epoch, after packing
    full_state_dict: dict | None = None  # FSDP: the gathered weights on rank 0
    fast: dict | None = None  # what odin_slm.fast turned on, when asked
    checkpoints: list[Path] = field(default_factory=list)
    trainer: Any = None  # the Trainer, for push_to_hub; None for the loop engine
    # True when the engine stopped early for SIGINT/SIGTERM and saved a checkpoint of that step;
    # a signal that arrives after the last step leaves it False: the run then writes its outputs.
    interrupted: bool = False


class Engine:
    """The default behaviour, shared by the engines; each module subclasses what differs."""

    name = "base"
    unsloth = False  # unsloth's models generate through FastLanguageModel.for_inference

    def check(self, script: Any, model_args: Any, args: Any) -> None:
        """Refuse options this engine would ignore (ConfigError, exit 2); runs before anything loads."""

    def load(self, model_args: Any, args: Any) -> tuple[Any, Any, Path]:
        """(model, tokenizer, path) on this rank's device; fp32 master weights unless --dtype."""
        import torch

        from odin_slm.model import load_args, load_model_and_tokenizer, quantization

        load = load_args(model_args, args)
        quant = quantization(model_args)  # --load_in_4bit: checked before the load
        model, tokenizer, path = load_model_and_tokenizer(
            model_args.model_name_or_path, **load, quantization_config=quant
        )
        if quant is None and torch.cuda.is_available():
            model.to(args.device)  # this rank's GPU under torchrun / accelerate launch
        return model, tokenizer, path

    def add_lora(self, model: Any, model_args: Any, args: Any) -> Any:
        """Wrap the model with LoRA when --use_peft (after the exact-match score before training)."""
        if not model_args.use_peft:
            return model
        from transformers import set_seed

        from odin_slm.model import apply_lora

        set_seed(args.seed)  # the adapter's initial weights do not depend on the eval before training
        return apply_lora(model, model_args)

    def rows(self, rows: list[dict]) -> list[dict]:
        """Tokenized rows as this engine's trainer wants them."""
        return rows

    def train(self, job: TrainJob) -> TrainResult:
        raise NotImplementedError


def get_engine(name: str) -> Engine:
    """The engine called ``name`` (trl, loop or unsloth; auto is resolved by the caller)."""
    if name == "trl":
        from odin_slm.engines.trl import TrlEngine

        return TrlEngine()
    if name == "loop":
        from odin_slm.engines.loop import LoopEngine

        return LoopEngine()
    if name == "unsloth":
        from odin_slm.engines.unsloth import UnslothEngine

        return UnslothEngine()
    raise ConfigError(f"--engine must be trl, loop, unsloth or auto, not {name!r}.")
