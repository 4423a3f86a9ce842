"""GPU speed levers for odin's trainer, measured in ``benchmarks/train_throughput.py`` (see docs/benchmarks.md).

Use, with TRL's ``SFTTrainer`` (the model is a ``transformers`` causal LM, plain or already wrapped by PEFT)::

    from odin_slm import fast

    plan = fast.tune(model, sft_config, lora=use_peft)          # edits the config, patches the model
    trainer = fast.trainer_class(SFTTrainer)(model=model, args=sft_config, peft_config=..., ...)
    log.info("fast levers: %s", plan)

Each lever falls back to the plain path, with the reason kept in the returned plan, where its kernel is
unavailable (no CUDA, no Triton, no ``liger-kernel``, an architecture Liger does not know):

- ``gradient_checkpointing``: off (memory allows it up to ~1B parameters on one 80 GB card: 18 GiB
  for a Llama-3.2-1B shape at 4 x 2048 tokens). For LoRA, ``lora_gradient_checkpointing=True`` is the
  small-memory mode (about 4x less memory, 20-25% slower).
- ``fused_linear_cross_entropy``: the loss comes from Liger's fused linear cross-entropy on the last
  hidden state, so the ``(tokens, vocab)`` logits are never built, and TRL's extra per-token entropy and
  accuracy metrics are not computed (their LM-head passes cost time). Only with bf16 weights (what was
  measured); with fp32 master weights TRL's own chunked head stays.
- ``loss_kernel``: which kernel computes that fused loss: ``"compiled"`` (``odin_slm.loss``: fewer, larger
  chunks, a compiled softmax, and no host sync; needs Triton, not liger-kernel), or ``"liger"``.
- ``compile_layers``: ``torch.compile`` of each decoder layer (regional compilation: the layers share
  one compiled graph, so it compiles in seconds, not minutes); it fuses RMSNorm, RoPE and SwiGLU itself.
- ``liger_layers``: Liger's RMSNorm, RoPE and SwiGLU kernels, used only when ``compile_layers`` is off.
- ``fuse_projections``: inside the compiled layers, linears that read the same input (q/k/v, gate/up, and
  their LoRA A matrices, frozen and trainable weights apart) run as one matmul each (``odin_slm.fuse``).
- ``lora_bf16_compute``: PEFT casts each LoRA input to the adapter's dtype (fp32) and keeps that fp32 copy
  for the backward pass; under bf16 autocast the matmul casts it straight back to bf16, so the copy
  costs memory and time and changes no number. This stops the cast (fp32 master weights stay). The
  fused loss runs the decoder under the same autocast as the Trainer's own forward.
- ``checkpoint_layers``: the fraction of decoder layers that recompute their activations in the
  backward pass (the first ones). 0 keeps every activation (fastest), 1 is full gradient
  checkpointing (smallest); in between trades speed for memory layer by layer.
- ``memory_budget`` / ``lora_memory_budget``: ``torch.compile``'s activation memory budget for the compiled
  layers (1.0 saves what the compiler would; lower makes its partitioner recompute the cheapest
  activations first). LoRA runs at 0.5 where activations are large (``LARGE_ACTIVATIONS``): its
  small-memory mode without recomputing whole layers; with small ones it keeps them all.
- ``compile_mode``: the ``torch.compile`` mode of the compiled layers. ``"auto"`` (the default) is
  ``"reduce-overhead"`` for full fine-tuning on one GPU without gradient accumulation,
  checkpointing or packed rows, else ``"default"`` (see ``compile_mode_for``). ``"reduce-overhead"``
  replays each layer's kernels as a CUDA graph (one launch instead of dozens, for steps bound by host work);
  ``"max-autotune-no-cudagraphs"`` benchmarks matmul kernels at compile time. With CUDA graphs the
  trainer marks each micro-batch's start, so a graph's outputs are not overwritten while still in use.
- ``compile_cache``: with ``compile_layers`` (inductor), what the run compiled is saved after its first
  step, at checkpoints and at the end to ``$ODIN_CACHE/compile/`` and loaded by the next run of the same
  shape before it compiles (``odin_slm.compile_cache``): a run in a new container or on a new machine
  whose ``$ODIN_CACHE`` persists skips most of the compile, where torch, the GPU and the graph match.
- ``pad_to_multiple_of``: with ``compile_layers``, batches are padded up to a multiple of 64 tokens (unless
  SFTConfig's ``pad_to_multiple_of`` is set), so that rows of varying length reach the compiler in a few
  shapes, not one per batch; the padding is masked and carries no label, so the loss is unchanged.
- ``lora_input_grads``: LoRA leaves the embeddings frozen, so the first decoder layer's input carries no
  gradient while every other layer's does, and the compiler builds a second graph (fwd and bwd) for it.
  Marking the embedding output as requiring grad (``enable_input_require_grads``, what PEFT does for
  gradient checkpointing) lets one graph serve every layer: half the compile time. No number changes.
  Only where activations are small (host-bound steps): with large ones that extra gradient would cost
  more GPU time at every step than the second compile costs once.
- ``ddp_lean``: under DDP (``torchrun``, ``accelerate launch``), the Trainer has DDP search the autograd graph
  for unused parameters at every step (unless gradient checkpointing is on). A dense decoder LM's trainable
  weights all take part in every step, so ``ddp_find_unused_parameters`` is set to ``False`` where the run
  left it unset: host work saved at every step, no number changed. Not for mixture-of-experts models (an
  expert no token reached has no gradient). Should a model leave a trainable weight unused, DDP stops at
  the second step and names ``--ddp_find_unused_parameters true``, which the run can then set.
- ``dataloader_workers``: collate in that many persistent DataLoader worker processes instead of the
  training loop's own thread (off by default: not yet measured to pay). A run's own
  ``--dataloader_num_workers`` wins.
- ``non_blocking_inputs``: each batch is copied to the GPU with ``non_blocking=True`` (the Trainer's
  ``accelerator_config.non_blocking``, from the DataLoader's pinned memory): a blocking copy makes the host
  wait until the GPU has finished all the work queued before it, at every step.
- ``device_nan_filter``: the Trainer's ``logging_nan_inf_filter`` (on by default) reads every micro-batch's
  loss on the host to test it for NaN/inf, which waits for the backward pass to finish. The trainer class
  applies the same filter on the GPU instead (the same logged loss; transformers 5 keeps the running loss
  on the device, where this applies), and sets the flag off only for the time of ``train()``.
- ``async_save``: checkpoints are written by a background thread (``odin_slm.async_save``): a save holds
  training up only while it copies the tensors into pinned host memory, and a checkpoint is complete only
  once all of it is written. Off where ``push_to_hub``, best-model tracking, DeepSpeed or FSDP read or write them.
- ``bf16`` and ``optim="adamw_torch_fused"``: TRL's defaults already; set explicitly, except where the run
  chose ``fp16`` or another optimizer (kept), or the GPU has no bf16.

The trainer class also counts the model's parameters once for the Trainer's FLOP estimate (the Trainer
recounts them at every step, walking every module: host time on steps that are bound by host work).

Importing this module is cheap: torch, transformers and liger are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from odin_slm import async_save, compile_cache
from odin_slm.data import pad_multiple
from odin_slm.distributed import world_size

log = logging.getLogger("odin_slm.fast")

# What won on the card (docs/benchmarks.md); a caller may override any of them through ``tune(**levers)``.
DEFAULTS: dict[str, Any] = {
    "gradient_checkpointing": False,  # full fine-tuning
    "lora_gradient_checkpointing": False,  # LoRA: True trades speed for the smallest memory
    "fused_linear_cross_entropy": True,
    "compile_layers": True,
    "liger_layers": False,  # only used when compile_layers is off or unavailable
    # LoRA inputs stay bf16 under autocast (numerically the same matmuls, no fp32 copy kept).
    "lora_bf16_compute": True,
    "checkpoint_layers": 0.0,
    "memory_budget": 1.0,  # full fine-tuning: keep what the compiler keeps
    # LoRA: recompute the cheapest activations; with lora_bf16_compute, 0.4 ran at 1.76-2.34x (S) and
    # 1.22-1.35x (L) unsloth's tokens/s at 4.3 and 7.6 GiB against its 5.35 and 8.82 (docs/benchmarks.md).
    "lora_memory_budget": 0.4,
    # "auto": CUDA graphs over the compiled layers for full fine-tuning (S full 1.37x and 1.43x the plain
    # compiled layers on one H200, now that no step waits on the host; LoRA 0.99-1.00x: docs/benchmarks.md).
    "compile_mode": "auto",
    # Which compiler builds the compiled layers: "inductor" (fused Triton kernels) or "cudagraphs" (the layers'
    # own kernels replayed as CUDA graphs: no kernel to generate, so it compiles in about a second, but
    # each step runs longer: ahead of inductor only while inductor's caches are empty, docs/benchmarks.md).
    "compile_backend": "inductor",
    # Inductor's compile worker processes started while the run loads, not at the first step: a cold start
    # (workers that import torch) then no longer holds the first step's kernels in one process.
    "warm_compile_workers": True,
    # The compiled layers' compile caches kept in $ODIN_CACHE/compile and loaded by the next run of the same
    # shape: a new container or machine whose $ODIN_CACHE persists skips most of the compile (gpu-full on one
    # H200: first step 3.4 s instead of 8.8 s, whole command 0.92x: docs/benchmarks.md). odin_slm.compile_cache.
    "compile_cache": True,
    # Compiled layers: rows of varying length padded up to a multiple of this, so that few shapes reach the
    # compiler (each new one costs a recompile). Only where SFTConfig's own pad_to_multiple_of is unset.
    "pad_to_multiple_of": 64,
    # LoRA with compiled layers: the first layer's input gets requires_grad like the others (one graph, not two).
    "lora_input_grads": True,
    # DDP: no per-step search for unused parameters (where the run left it unset; dense models only).
    "ddp_lean": True,
    # DataLoader worker processes (persistent), so that collation leaves the training loop's thread; 0: off
    # (0.98x and 1.05x the default on one H200: docs/benchmarks.md). Only where the run kept the Trainer's 0.
    "dataloader_workers": 0,
    # Compiled layers: q/k/v and gate/up (and their LoRA A) as one matmul each. Measured slower on one H200
    # (0.95-0.98x, docs/benchmarks.md): off.
    "fuse_projections": False,
    # The fused loss's kernel: "compiled" (odin_slm.loss: chunks sized by memory, a compiled softmax, no host
    # sync) or "liger" (Liger's fused linear cross-entropy). Compiled against Liger on one H200: L full 1.11x
    # (63.4% MFU), S LoRA 1.10x, L LoRA 1.02x and 1.05x, the same memory (docs/benchmarks.md).
    "loss_kernel": "compiled",
    # Batches copied to the GPU without waiting for it (accelerate's non_blocking, from pinned memory).
    "non_blocking_inputs": True,
    # The Trainer's NaN/inf loss filter without reading each micro-batch's loss on the host.
    "device_nan_filter": True,
    # Checkpoints written by a background thread (odin_slm.async_save): gpu-full's two saves held training
    # up about 2 s each on one H200. True or "pinned": the tensors copied into pinned host memory; "device":
    # copied on the GPU where the run's peak leaves room (the save returns sooner, the copies hold GPU
    # memory until written); False: written in the loop.
    "async_save": True,
}

LOSS_KERNELS = ("liger", "compiled")

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

COMPILE_BACKENDS = ("inductor", "cudagraphs")

# The compile modes that replay CUDA graphs (the trainer marks each micro-batch's start for them).
GRAPH_MODES = ("reduce-overhead", "max-autotune")


def compile_mode_for(mode: str, args: Any, *, lora: bool, checkpointing: bool) -> str:
    """The compile mode that ``"auto"`` stands for; any other ``mode`` is returned as given.

    CUDA graphs (``"reduce-overhead"``) for full fine-tuning only: LoRA measured no gain. Not where a
    graph's outputs could be overwritten while still in use or where graphs are not measured: gradient
    accumulation (the gradients of the first micro-batch wait while the next one replays), recomputed
    layers (gradient checkpointing replays the forward inside the backward), or more than one process.
    Nor for packed or padding-free rows, whose length changes with every batch: each new length is a new
    graph to record and keep. Nor where the Trainer would wrap the model in DataParallel (several GPUs
    without a launcher: each replica runs in threads of its own), nor on a torch without
    ``torch.compiler.set_stance`` (< 2.6), where generation and evaluation could not run the layers eagerly.
    """
    if mode != "auto":
        return mode
    accumulates = int(getattr(args, "gradient_accumulation_steps", 1) or 1) > 1
    free_length = bool(getattr(args, "packing", False) or getattr(args, "padding_free", False))
    replicas = world_size() > 1 or int(getattr(args, "n_gpu", 1) or 1) > 1
    if lora or checkpointing or accumulates or free_length or replicas or not _eager_stance():
        return "default"
    return "reduce-overhead"


def _eager_stance() -> Any:
    """``torch.compiler.set_stance``, which ``eager()`` uses; None on torch < 2.6."""
    import torch

    return getattr(getattr(torch, "compiler", None), "set_stance", None)


# Where the levers were measured to pay on one H200 (docs/train-gpu.md, docs/benchmarks.md): steps of
# 8 x 2048 tokens ran 1.3-2.4x faster once compiled; the shipped configs' 200 steps of 32 short rows, end to
# end with evaluation, ran faster too once the rows were padded to a multiple of 64 (one compile, not one per
# row length). A cold compile costs seconds, so runs shorter than this stay on the plain path: gpu-full at 100
# steps with empty compile caches took 1.00x and 1.18x the plain time, at 150 steps 0.895x, at 200 steps
# 0.795-0.99x (break-even estimated at about 130 steps on slower hosts, 175 on a fast one). LoRA below 150:
# one measurement at 120 steps, inconclusive (1.06x, 0.92x without an outlier), so the same threshold.
PAYS_STEPS = 150
# The LoRA memory budget recomputes activations to save memory; it pays only where they are large:
# tokens x hidden size x layers per micro-batch (the benchmark's shapes: 2.7-2.8e8; the shipped configs: 7e7).
LARGE_ACTIVATIONS = 1e8


def wanted(
    requested: bool | None, *, engine: str, cuda: bool, steps: int, tokens_per_step: int | None = None
) -> bool:
    """Whether a run gets the levers: ``requested`` (``--odin_fast``) if given, else where they pay.

    Only CUDA and the ``trl`` engine have them; ``steps`` is the optimizer steps the run will take.
    ``tokens_per_step`` is accepted for callers of earlier releases and no longer decides.
    """
    if not cuda or engine != "trl":
        return False
    if requested is not None:
        return bool(requested)
    return steps >= PAYS_STEPS


def activation_size(model: Any, args: Any) -> float:
    """Tokens x hidden size x decoder layers of one micro-batch at ``max_length``: how large activations are."""
    config = getattr(model, "config", None)
    tokens = int(getattr(args, "per_device_train_batch_size", 8) or 8) * int(
        getattr(args, "max_length", 0) or 1024
    )
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    return float(tokens * hidden * len(_decoder_layers(model)))


def kept_from_run(args: Any, *, lora: bool) -> dict[str, Any]:
    """Lever overrides for ``tune`` that keep a trainer run's own choices: odin's trainer defaults to no
    gradient checkpointing, so a run that turned it on needs the memory and keeps it."""
    if getattr(args, "gradient_checkpointing", False):
        return {("lora_" if lora else "") + "gradient_checkpointing": True}
    return {}


@dataclass
class FastPlan:
    """What :func:`tune` turned on, and why each other lever stayed off."""

    on: list[str] = field(default_factory=list)
    off: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        offs = ", ".join(f"{k} ({v})" for k, v in self.off.items())
        return f"on: {', '.join(self.on) or 'none'}; off: {offs or 'none'}"

    def as_dict(self) -> dict[str, Any]:
        return {"on": list(self.on), "off": dict(self.off)}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# The Trainer's plain AdamW names: the fused kernel computes the same update.
ADAMW = ("adamw_torch", "adamw_torch_fused")


def _bf16_supported() -> bool:
    import torch

    return torch.cuda.is_bf16_supported()


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _head_dtype(model: Any) -> Any:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return getattr(getattr(head, "weight", None), "dtype", None)


# Config fields of heads whose logits are more than ``hidden @ weight.T``: soft-capping (Gemma 2/3/3n/4,
# RecurrentGemma, xLSTM), scaling (Granite, Cohere, FalconH1, muP widths), a padded vocabulary cut off after
# the head. The fused loss computes plain logits, so those models keep the model's own loss.
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logits_soft_cap",
    "output_logit_soft_cap",
    "logits_scaling",
    "logit_scale",
    "lm_head_multiplier",
    "output_multiplier",
    "logits_mup_width_multiplier",
    "unpadded_vocab_size",
)


def _head_not_plain(model: Any) -> str:
    """Why the fused loss cannot stand in for the model's head ("" where it can)."""
    config = getattr(model, "config", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else None
    for cfg in (config, text):
        for name in _LOGIT_TRANSFORMS:
            value = getattr(cfg, name, None)
            if value not in (None, 1, 1.0, 0, 0.0):
                return f"the head transforms its logits ({name}={value})"
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if getattr(head, "bias", None) is not None:
        return "the output head has a bias"
    # e.g. ModernBertDecoder: its lm_head is a dense layer, activation and norm before the output embeddings
    if getattr(model, "lm_head", head) is not head:
        return "the model's lm_head is more than its output embeddings"
    return ""


def _decoder_layers(model: Any) -> list[Any]:
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    layers = getattr(base, "layers", None)
    return list(layers) if layers is not None else []


def warm_compile_workers() -> bool:
    """Start inductor's compile worker processes now; True if torch started them.

    Inductor starts them at the first compile and compiles kernels in the training process itself until
    they are up (seconds: they import torch and Triton). Started while the run still loads its data and
    model, they are up sooner. They are processes of their own: the caller does not wait. Idempotent;
    torch's own switches (``TORCH_WARM_POOL=0``, ``TORCHINDUCTOR_COMPILE_THREADS=1``) still hold, and
    then this returns False.
    """
    try:
        from torch._inductor.async_compile import AsyncCompile, maybe_warm_pool
    except ImportError:  # a torch without it: the first compile starts them, as before
        return False
    maybe_warm_pool()
    # the marker inductor itself waits on before it hands kernels to the workers
    return getattr(AsyncCompile, "_ready_future", None) is not None


def warms_compile_workers(
    args: Any = None, *, quantized: bool = False, levers: dict[str, Any] | None = None
) -> bool:
    """Whether ``tune`` with these ``levers`` would compile with inductor and warm its workers (on CUDA),
    as far as it can be told before the model loads: not for ``quantized`` weights nor under FSDP, where
    the layers are not compiled (``_untested_setup``)."""
    opts = {**DEFAULTS, **(levers or {})}
    if not (
        opts["warm_compile_workers"] and opts["compile_layers"] and opts["compile_backend"] == "inductor"
    ):
        return False
    return not _untested(quantized, args)


def _compile_layers(model: Any, mode: str = "default", backend: str = "inductor") -> None:
    import torch

    # One compiled graph serves every layer; raise the recompile limits so a second variant (eval mode,
    # checkpoint recompute) does not silently drop back to eager.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    if hasattr(torch._dynamo.config, "accumulated_cache_size_limit"):
        torch._dynamo.config.accumulated_cache_size_limit = max(
            torch._dynamo.config.accumulated_cache_size_limit, 512
        )
    for layer in _decoder_layers(model):
        if backend == "inductor":
            layer.compile(mode=None if mode == "default" else mode)
        else:
            # torch.compile takes a mode only with inductor. The cudagraphs backend replays one graph per
            # shape it was compiled for and cannot take dynamic shapes (a second row length then fails to
            # copy into the first graph's inputs), so each row length compiles its own static graph.
            layer.compile(backend=backend, dynamic=False)


def _checkpoint_layers(model: Any, fraction: float) -> int:
    """Recompute the first ``fraction`` of decoder layers in backward; returns how many.

    Set per layer (what ``gradient_checkpointing_enable`` does for all of them), with the Trainer's own
    ``gradient_checkpointing`` left off so that it does not switch every layer back on.
    """
    import functools

    from torch.utils.checkpoint import checkpoint

    layers = [m for m in _decoder_layers(model) if hasattr(m, "gradient_checkpointing")]
    count = round(max(0.0, min(1.0, fraction)) * len(layers))
    func = functools.partial(checkpoint, use_reentrant=False)
    for layer in layers[:count]:
        layer._gradient_checkpointing_func = func
        layer.gradient_checkpointing = True
    return count


_BUDGET_BEFORE: list[float] = []  # the process's own budget, kept when tune first changed it


def _sharded(args: Any) -> str:
    """ "FSDP" or "DeepSpeed" where the run shards the model (its arguments, or accelerate launch's
    environment); empty under DDP or in one process."""
    import os

    def launched_with(name: str) -> bool:
        # accelerate's own reading of these flags (its str_to_bool)
        return os.environ.get(f"ACCELERATE_USE_{name}", "").lower() in ("y", "yes", "t", "true", "on", "1")

    if getattr(args, "fsdp", None) or launched_with("FSDP"):
        return "FSDP"
    if getattr(args, "deepspeed", None) or launched_with("DEEPSPEED"):
        return "DeepSpeed"
    return ""


def _untested_setup(model: Any, args: Any) -> str:
    """Where compiled layers were never measured (and could fail at the first step, outside tune's
    fallback): quantized weights (QLoRA) and FSDP. Empty where they were."""
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    return _untested(bool(quantized), args)


def _untested(quantized: bool, args: Any) -> str:
    """``_untested_setup`` from what is known before the model loads."""
    if quantized:
        return "with quantized weights"
    if _sharded(args) == "FSDP":
        return "under FSDP"
    return ""


def _ddp_lean(model: Any, args: Any, wanted: bool, plan: FastPlan) -> None:
    config = getattr(model, "config", None)
    moe = any(getattr(config, k, None) for k in ("num_experts", "num_local_experts", "num_experts_per_tok"))
    if not wanted:
        plan.off["ddp_lean"] = "disabled"
    elif world_size() <= 1:
        plan.off["ddp_lean"] = "one process"
    elif _sharded(args):
        plan.off["ddp_lean"] = "not DDP"
    elif not _decoder_layers(model):
        plan.off["ddp_lean"] = "no decoder layers found"
    elif moe:
        # an expert that no token was routed to gets no gradient in that step (transformers 4.x MoE layers)
        plan.off["ddp_lean"] = "mixture of experts: some weights can go unused in a step"
    elif getattr(args, "ddp_find_unused_parameters", None) is not None:
        plan.off["ddp_lean"] = "set by the run"
    else:
        args.ddp_find_unused_parameters = False
        plan.on.append("ddp_lean")


def _non_blocking_inputs(args: Any, wanted: bool, plan: FastPlan) -> None:
    config = getattr(args, "accelerator_config", None)
    if not wanted:
        plan.off["non_blocking_inputs"] = "disabled" if _cuda() else "needs CUDA"
    elif not getattr(args, "dataloader_pin_memory", False):
        plan.off["non_blocking_inputs"] = "dataloader_pin_memory is off"  # a pageable copy blocks anyway
    elif not hasattr(config, "non_blocking"):
        plan.off["non_blocking_inputs"] = "this transformers has no accelerator_config.non_blocking"
    else:
        config.non_blocking = True
        plan.on.append("non_blocking_inputs")


def _set_memory_budget(budget: float) -> None:
    import torch._functorch.config as functorch_config

    if not _BUDGET_BEFORE:
        _BUDGET_BEFORE.append(functorch_config.activation_memory_budget)
    functorch_config.activation_memory_budget = budget


def _restore_memory_budget() -> None:
    """The budget is process-wide: a later tune() that leaves it off must not inherit an earlier run's."""
    if _BUDGET_BEFORE:
        import torch._functorch.config as functorch_config

        functorch_config.activation_memory_budget = _BUDGET_BEFORE[0]


def _fuse_projections(wanted: bool, compiled: bool, plan: FastPlan) -> None:
    """Install ``odin_slm.fuse``'s pass into inductor where the lever is on and the layers are compiled."""
    loaded = sys.modules.get("odin_slm.fuse")
    if wanted and compiled:
        try:
            from odin_slm import fuse

            fuse.enable()
            plan.on.append("fuse_projections")
            return
        except Exception as exc:  # a failing lever must not stop training
            plan.off["fuse_projections"] = f"failed: {exc!r}"
    else:
        plan.off["fuse_projections"] = "needs compile_layers" if wanted else "disabled"
    # Inductor's pass list is process-wide: a later tune() without the lever must not inherit it.
    if loaded is not None:
        loaded.disable()


def _liger_layers(model: Any) -> None:
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    # The loss is odin's own (see trainer_class), so Liger must not replace the model's forward.
    _apply_liger_kernel_to_instance(
        model=model,
        rope=True,
        rms_norm=True,
        swiglu=True,
        cross_entropy=False,
        fused_linear_cross_entropy=False,
    )


def tune(model: Any, args: Any, *, lora: bool, **levers: Any) -> FastPlan:
    """Apply the winning levers to ``model`` (a transformers causal LM, or a PEFT model) and ``args`` (an SFTConfig).

    ``levers`` overrides ``DEFAULTS`` by name. Returns what was applied; never raises for a missing kernel.
    """
    opts = {**DEFAULTS, **levers}
    plan = FastPlan()
    cuda = _cuda()
    # Also accept a model PEFT has already wrapped: the flags and patches belong on the base model.
    model = model.get_base_model() if hasattr(model, "get_base_model") else model

    # Precision and optimizer: what the levers were measured with, unless the run chose otherwise.
    if getattr(args, "fp16", False):
        plan.off["bf16"] = "fp16 set by the run"
    elif cuda and not _bf16_supported():
        plan.off["bf16"] = "this GPU has no bf16"
    else:
        args.bf16 = bool(cuda)
    optim = str(getattr(args.optim, "value", args.optim))
    if cuda and optim in ADAMW:
        args.optim = "adamw_torch_fused"
    elif cuda:
        plan.off["optim=adamw_torch_fused"] = f"optim {optim} set by the run"
    gc = opts["lora_gradient_checkpointing"] if lora else opts["gradient_checkpointing"]
    args.gradient_checkpointing = bool(gc)
    if gc:
        plan.on.append("gradient_checkpointing")
    else:
        plan.off["gradient_checkpointing"] = "memory allows"

    want_flce = bool(opts["fused_linear_cross_entropy"])
    kernel = str(opts["loss_kernel"])
    if kernel not in LOSS_KERNELS:
        raise ValueError(f"loss_kernel={kernel!r}: one of {', '.join(LOSS_KERNELS)}")
    needs, needs_name = ("triton", "Triton") if kernel == "compiled" else ("liger_kernel", "liger-kernel")
    if not want_flce:
        plan.off["fused_linear_cross_entropy"] = "disabled"
    elif not cuda or not _have(needs):
        plan.off["fused_linear_cross_entropy"] = f"needs CUDA and {needs_name}"
    elif world_size() > 1:
        # DDP reduces gradients only after a forward through its own wrapper, which the fused loss bypasses.
        plan.off["fused_linear_cross_entropy"] = "more than one process (DDP)"
    elif str(_head_dtype(model)) != "torch.bfloat16":
        # Measured with bf16 weights only; fp32 master weights under autocast are not measured with it.
        plan.off["fused_linear_cross_entropy"] = f"weights are {_head_dtype(model)}, measured with bf16 only"
    elif reason := _head_not_plain(model):
        plan.off["fused_linear_cross_entropy"] = reason
    else:
        plan.on.append("fused_linear_cross_entropy" + ("(compiled)" if kernel == "compiled" else ""))
    # The trainer class reads these flags, so the choice travels with the model.
    model._odin_flce = any(name.startswith("fused_linear_cross_entropy") for name in plan.on)
    model._odin_loss_kernel = kernel
    model._odin_lora_bf16 = False

    compiled = False
    fraction = float(opts["checkpoint_layers"])
    mode = str(opts["compile_mode"])
    if mode != "auto" and mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode={mode!r}: auto or one of {', '.join(COMPILE_MODES)}")
    mode = compile_mode_for(mode, args, lora=lora, checkpointing=bool(gc) or fraction > 0)
    backend = str(opts["compile_backend"])
    if backend not in COMPILE_BACKENDS:
        raise ValueError(f"compile_backend={backend!r}: one of {', '.join(COMPILE_BACKENDS)}")
    if backend == "cudagraphs" and mode not in GRAPH_MODES:
        # The cudagraphs backend is CUDA graphs only: where this run may not replay graphs, inductor.
        plan.off["compile_backend=cudagraphs"] = "this run does not use CUDA graphs"
        backend = "inductor"
    model._odin_cuda_graphs = False
    if not opts["compile_layers"]:
        plan.off["compile_layers"] = "disabled"
    elif not cuda or not _have("triton"):
        plan.off["compile_layers"] = "needs CUDA and Triton"
    elif not _decoder_layers(model):
        plan.off["compile_layers"] = "no decoder layers found"
    elif untested := _untested_setup(model, args):
        plan.off["compile_layers"] = f"not measured {untested}"
    else:
        try:
            _compile_layers(model, mode, backend)
            compiled = True
            if backend != "inductor":
                plan.on.append(f"compile_layers(backend={backend})")
            else:
                plan.on.append("compile_layers" if mode == "default" else f"compile_layers(mode={mode})")
            model._odin_cuda_graphs = mode in GRAPH_MODES
        except Exception as exc:  # a failing lever must not stop training
            plan.off["compile_layers"] = f"failed: {exc!r}"
    if not opts["warm_compile_workers"]:
        plan.off["warm_compile_workers"] = "disabled"
    elif not compiled or backend != "inductor":
        plan.off["warm_compile_workers"] = "needs compile_layers with inductor"
    else:
        try:  # already started where the recipe warmed them while loading: then a no-op
            if warm_compile_workers():
                plan.on.append("warm_compile_workers")
            else:
                plan.off["warm_compile_workers"] = "torch started no compile workers (one compile thread?)"
        except Exception as exc:  # the first compile starts them anyway
            plan.off["warm_compile_workers"] = f"failed: {exc!r}"

    _fuse_projections(bool(opts["fuse_projections"]), compiled, plan)

    multiple = int(opts["pad_to_multiple_of"] or 0)
    if not compiled or multiple <= 1:
        plan.off["pad_to_multiple_of"] = "needs compile_layers" if multiple > 1 else "disabled"
    elif pad_multiple(args) is not None:
        plan.off["pad_to_multiple_of"] = f"set by the run ({args.pad_to_multiple_of})"
    elif getattr(args, "packing", False):
        # TRL's packing collator pads its one flattened row: padding it further is only waste
        plan.off["pad_to_multiple_of"] = "packing: TRL's collator pads"
    else:
        args.pad_to_multiple_of = multiple
        plan.on.append(f"pad_to_multiple_of={multiple}")

    size = activation_size(model, args)
    if lora:
        if not opts["lora_input_grads"]:
            plan.off["lora_input_grads"] = "disabled"
        elif not compiled:
            plan.off["lora_input_grads"] = "needs compile_layers"
        elif size >= LARGE_ACTIVATIONS and "lora_input_grads" not in levers:
            # GPU-bound steps: layer 0's input gradient costs every step more than the second graph once.
            plan.off["lora_input_grads"] = f"activations are large ({size:.1e})"
        elif not hasattr(model, "enable_input_require_grads"):
            plan.off["lora_input_grads"] = "the model has no enable_input_require_grads"
        else:
            model.enable_input_require_grads()
            plan.on.append("lora_input_grads")
        if not opts["lora_bf16_compute"]:
            plan.off["lora_bf16_compute"] = "disabled"
        elif not args.bf16:
            plan.off["lora_bf16_compute"] = "needs bf16 autocast"
        else:
            model._odin_lora_bf16 = True
            plan.on.append("lora_bf16_compute")

    if gc or fraction <= 0:
        plan.off["checkpoint_layers"] = "gradient_checkpointing covers all layers" if gc else "disabled"
    else:
        count = _checkpoint_layers(model, fraction)
        plan.on.append(f"checkpoint_layers={count}/{len(_decoder_layers(model))}")

    budget = float(opts["lora_memory_budget"] if lora else opts["memory_budget"])
    _restore_memory_budget()
    if budget >= 1.0:
        plan.off["memory_budget"] = "disabled"
    elif not compiled:
        plan.off["memory_budget"] = "needs compile_layers"
    elif lora and "lora_memory_budget" not in levers and size < LARGE_ACTIVATIONS:
        plan.off["memory_budget"] = f"activations are small ({size:.1e} < {LARGE_ACTIVATIONS:.0e})"
    else:
        _set_memory_budget(budget)
        plan.on.append(f"memory_budget={budget:g}")

    _ddp_lean(model, args, opts["ddp_lean"], plan)

    _non_blocking_inputs(args, bool(opts["non_blocking_inputs"]) and cuda, plan)
    model._odin_nan_filter = bool(opts["device_nan_filter"]) and cuda
    if not model._odin_nan_filter:
        plan.off["device_nan_filter"] = "disabled" if cuda else "needs CUDA"
    elif not getattr(args, "logging_nan_inf_filter", False):
        plan.off["device_nan_filter"] = "the run turned the filter off"
    else:
        plan.on.append("device_nan_filter")

    workers = int(opts["dataloader_workers"] or 0)
    if workers <= 0:
        plan.off["dataloader_workers"] = "disabled"
    elif getattr(args, "dataloader_num_workers", 0):
        plan.off["dataloader_workers"] = f"set by the run ({args.dataloader_num_workers})"
    else:
        args.dataloader_num_workers = workers
        args.dataloader_persistent_workers = True  # no respawn at every epoch
        plan.on.append(f"dataloader_workers={workers}")

    if not opts["liger_layers"]:
        plan.off["liger_layers"] = "disabled" if not compiled else "compile_layers fuses them"
    elif compiled:
        plan.off["liger_layers"] = "compile_layers fuses them"
    elif not cuda or not _have("liger_kernel"):
        plan.off["liger_layers"] = "needs CUDA and liger-kernel"
    else:
        try:
            _liger_layers(model)
            plan.on.append("liger_layers")
        except Exception as exc:
            plan.off["liger_layers"] = f"failed: {exc!r}"
    _async_save(model, args, opts["async_save"], plan)
    _compile_cache(model, args, bool(opts["compile_cache"]), compiled and backend == "inductor", plan)
    log.info("odin fast levers: %s", plan)
    return plan


def _async_save(model: Any, args: Any, wanted: bool | str, plan: FastPlan) -> None:
    """Checkpoints written in the background where nothing reads them as they are saved (the trainer class
    makes the writer)."""
    model._odin_async_save = False
    if not wanted:
        plan.off["async_save"] = "disabled"
        return
    mode = async_save.MODES[0] if wanted is True else str(wanted)
    if mode not in async_save.MODES:
        raise ValueError(f"async_save={wanted!r}: true, false or one of {', '.join(async_save.MODES)}")
    importlib.import_module("transformers.trainer")  # loaded by the trainer already; its rotation is patched
    # Under DDP the process that saves (rank 0) writes in the background; the others write only their RNG
    # state, which is small and written at once, and meet rank 0 at the next step's all-reduce. Rank 0
    # waits for its last write before the next save's first collective (the Trainer's store_flos), so no
    # rank writes into a newer checkpoint while rank 0 still writes or rotates the older one.
    if sharded := _sharded(args):
        plan.off["async_save"] = f"{sharded} writes its own checkpoints"
    elif reason := async_save.unsupported(args) or async_save.unavailable():
        plan.off["async_save"] = reason
    else:
        model._odin_async_save = mode
        plan.on.append("async_save" if mode == async_save.MODES[0] else f"async_save={mode}")


def _compile_cache(model: Any, args: Any, wanted: bool, inductor: bool, plan: FastPlan) -> None:
    """Load the artifact of earlier runs of this shape before the first compile; the trainer saves this run's
    (``compile_cache.saver``). Last in ``tune``: the levers that are on are part of the artifact's name."""
    model._odin_compile_cache = None
    if not wanted:
        plan.off["compile_cache"] = "disabled"
    elif not inductor:
        plan.off["compile_cache"] = "needs compile_layers with inductor"
    elif reason := compile_cache.unavailable():
        plan.off["compile_cache"] = reason
    else:
        try:
            folder = compile_cache.artifact_dir(model, args, levers=plan.on)
            loaded = compile_cache.load(folder)
        except Exception as exc:  # only the next run's compile is at stake
            plan.off["compile_cache"] = f"failed: {exc!r}"
            return
        model._odin_compile_cache = (folder, loaded)
        entries = len(frozenset().union(*loaded.values()))
        plan.on.append(f"compile_cache(loaded {entries} entries)" if loaded else "compile_cache")


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Run compiled layers as plain eager code inside: generation and evaluation never compile.

    Generation calls each layer with a KV cache and a new length at every token, which would make
    dynamo recompile per layer and step; evaluation would compile a second (no-grad) graph.
    """
    set_stance = _eager_stance()
    if set_stance is None:  # torch < 2.6: nothing was compiled with a stance to change
        yield
        return
    with set_stance("force_eager"):
        yield


def _flce_loss(trainer: Any, model: Any, inputs: dict[str, Any], num_items_in_batch: Any) -> Any:
    import torch

    core = trainer.accelerator.unwrap_model(model)
    if hasattr(core, "get_base_model"):  # PEFT: the LoRA layers live inside the base model's modules
        core = core.get_base_model()
    backbone = core.get_decoder() if hasattr(core, "get_decoder") else core.model
    labels = inputs["labels"]
    fwd = {
        k: v
        for k, v in inputs.items()
        if k in ("input_ids", "attention_mask", "position_ids", "inputs_embeds")
    }
    # The Trainer's own forward runs under accelerate's autocast; this call bypasses that wrapper.
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(trainer.args.bf16))
    with autocast:
        hidden = backbone(**fwd, use_cache=False).last_hidden_state[:, :-1]
    target = labels[:, 1:].reshape(-1)
    hidden = hidden.reshape(-1, hidden.size(-1))
    weight = core.get_output_embeddings().weight
    # Like TRL's own loss: a sum over the label tokens divided by the batch's label-token count.
    if getattr(core, "_odin_loss_kernel", "liger") == "compiled":
        from odin_slm.loss import linear_cross_entropy

        loss_sum = linear_cross_entropy(hidden, weight, target)
    else:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        loss_sum = liger_fused_linear_cross_entropy(
            hidden,
            weight,
            target,
            reduction="sum",
            accum_dtype=torch.float32 if weight.requires_grad else None,
        )
    if model.training and "attention_mask" in inputs:
        # TRL's num_tokens metric (its compute_loss, bypassed here), summed on the GPU until the next log.
        count = inputs["attention_mask"].sum()
        tokens = trainer.__dict__.get("_odin_tokens")
        trainer._odin_tokens = count if tokens is None else tokens + count
    elif not model.training and hasattr(trainer, "_total_train_tokens"):
        trainer._metrics["eval"]["num_tokens"] = [trainer._total_train_tokens]  # as TRL's eval logs it
    denom = num_items_in_batch if num_items_in_batch is not None else (target != -100).sum()
    return loss_sum / torch.as_tensor(denom, device=loss_sum.device).clamp(min=1)


def _loss_kept_on_device(trainer_cls: type) -> bool:
    """Whether the Trainer's loop applies its NaN/inf filter to a running loss kept in ``self._tr_loss``
    (transformers 5), which ``training_step`` can reach; older loops keep it in a local variable."""
    names = {name for cls in trainer_cls.__mro__ for name in vars(cls)}
    for name in names:
        # the method that runs is the one the class resolves, not an overridden base's
        code = getattr(getattr(trainer_cls, name, None), "__code__", None)
        if code is not None and {"logging_nan_inf_filter", "_tr_loss"} <= set(code.co_names):
            return True
    return False


def _ddp_wrapped(model: Any) -> bool:
    """DDP reduces gradients only after a forward through its own wrapper, which the fused loss bypasses
    (and DataParallel would compute the whole batch on one GPU). Also under torch.compile's wrapper."""
    from torch.nn import DataParallel
    from torch.nn.parallel import DistributedDataParallel

    while hasattr(model, "_orig_mod"):
        model = model._orig_mod
    return isinstance(model, (DistributedDataParallel, DataParallel))


def trainer_class(base: type) -> type:
    """A subclass of ``base`` (TRL's SFTTrainer) whose loss is Liger's fused linear cross-entropy.

    It also applies ``lora_bf16_compute`` once PEFT has wrapped the model.

    It falls back to ``base.compute_loss`` when the model was not tuned with that lever, when the batch
    carries something the fused path does not handle (``return_outputs``, a custom ``compute_loss_func``,
    label smoothing), when the model has no decoder/output embeddings to reach, or under DDP (whose
    gradient reduction needs its own forward).
    """

    class OdinFastTrainer(base):  # type: ignore[misc,valid-type]
        # async_save: train() returns once its checkpoints are complete. odin's recipe sets False and waits
        # after the exact match that follows training (odin_slm.train.checkpoints_written).
        wait_after_train = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            core = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            if getattr(core, "_odin_compile_cache", None) is not None:
                self.add_callback(compile_cache.saver(*core._odin_compile_cache))
            mode = getattr(core, "_odin_async_save", False)
            if mode and (reason := async_save.unavailable(type(self))):
                log.info("odin fast levers: async_save off: %s", reason)
                mode = False
            self._odin_writer = async_save.Writer(mode) if mode else None
            if mode == "pinned" and self.args.should_save:  # ranks that write no checkpoint reserve nothing
                self.add_callback(async_save.reserver(self))
            if mode:
                handler, end = self.callback_handler, self.callback_handler.on_train_end

                def on_train_end(*args: Any, **kwargs: Any) -> Any:
                    # a callback that may read the last checkpoint at the end finds it complete, as ever
                    if any(async_save.reads_checkpoints(cb, "on_train_end") for cb in handler.callbacks):
                        self.wait_for_checkpoints()
                    return end(*args, **kwargs)

                handler.on_train_end = on_train_end
            if getattr(core, "_odin_lora_bf16", False):
                # PEFT made the LoRA layers inside __init__; stop them casting their inputs to fp32.
                for module in self.model.modules():
                    if hasattr(module, "cast_input_dtype_enabled"):
                        module.cast_input_dtype_enabled = False

        def floating_point_ops(self, inputs: dict[str, Any]) -> int:
            # The Trainer's estimate is 6 x tokens x parameters, and it counts the parameters at every step
            # by walking every module. They do not change while training: take the count per token once.
            main = getattr(self.model, "main_input_name", "input_ids")
            tokens = getattr(inputs.get(main), "numel", lambda: 0)()
            per_token = self.__dict__.get("_odin_flops_per_token")
            if per_token is None or per_token[0] is not self.model:
                flops = super().floating_point_ops(inputs)
                if not tokens or flops % tokens:
                    return flops
                self._odin_flops_per_token = per_token = (self.model, flops // tokens)
            return per_token[1] * tokens

        def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
            self._odin_count_tokens()  # TRL's eval metrics read the running token count
            with eager(), self._odin_own_filter():  # evaluation filters its losses by the same flag
                return super().evaluate(*args, **kwargs)

        def _odin_count_tokens(self) -> None:
            tokens = self.__dict__.pop("_odin_tokens", None)
            if tokens is not None and hasattr(self, "_total_train_tokens"):
                # TRL's num_tokens metric, counted on the GPU by the fused loss and read here, once per log.
                self._total_train_tokens += int(tokens) // getattr(self, "_tp_size", 1)
                self._metrics["train"]["num_tokens"] = [self._total_train_tokens]

        def _save_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
            self._odin_count_tokens()
            writer = self.__dict__.get("_odin_writer")
            background = writer.deferred(self) if writer is not None else contextlib.nullcontext()
            with self._odin_own_filter(), background:  # training_args.bin holds the run's own flag
                saved = super()._save_checkpoint(*args, **kwargs)
            if any(async_save.reads_checkpoints(cb) for cb in self.callback_handler.callbacks):
                self.wait_for_checkpoints()  # their on_save comes next: the checkpoint is complete, as ever
            return saved

        def wait_for_checkpoints(self) -> None:
            """Block until the checkpoints written in the background are complete (``async_save``)."""
            writer = self.__dict__.get("_odin_writer")
            if writer is not None:
                writer.wait()

        @contextlib.contextmanager
        def _odin_own_filter(self) -> Iterator[None]:
            """The run's own ``logging_nan_inf_filter`` inside, where the device filter had turned it off."""
            own = self.__dict__.get("_odin_filter_own")
            if own is None:
                yield
                return
            self.args.logging_nan_inf_filter = own
            try:
                yield
            finally:
                self.args.logging_nan_inf_filter = False

        def train(self, *args: Any, **kwargs: Any) -> Any:
            core = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            self._odin_nan_filter = bool(
                self.args.logging_nan_inf_filter
                and getattr(core, "_odin_nan_filter", False)
                and _loss_kept_on_device(type(self))
            )
            self.wait_for_checkpoints()  # a checkpoint of an earlier train() that resumes from it
            try:
                result = super().train(*args, **kwargs)
            except BaseException:
                with contextlib.suppress(Exception):  # the error that stopped training is the one to see
                    self.wait_for_checkpoints()
                raise
            finally:
                own = self.__dict__.pop("_odin_filter_own", None)
                if own is not None:
                    self.args.logging_nan_inf_filter = own
            if self.wait_after_train:
                self.wait_for_checkpoints()  # code after train() finds its checkpoints complete
            return result

        def training_step(self, *args: Any, **kwargs: Any) -> Any:
            loss = super().training_step(*args, **kwargs)
            running = self.__dict__.get("_tr_loss")
            if not self.__dict__.get("_odin_nan_filter") or running is None:
                return loss
            if "_odin_filter_own" not in self.__dict__:
                # From here on the Trainer does not read the loss on the host; this step filters it on the
                # GPU. Set at the first step, so that callbacks' on_train_begin still see the run's flag.
                self._odin_filter_own = self.args.logging_nan_inf_filter
                self.args.logging_nan_inf_filter = False
            import torch

            # The Trainer's own filter: a NaN/inf loss counts as the mean of the losses since the last log.
            mean = running / (1 + self.state.global_step - self._globalstep_last_logged)
            return torch.where(torch.isfinite(loss), loss, mean.to(loss.dtype))

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            self._odin_count_tokens()
            super().log(logs, *args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            core = self.accelerator.unwrap_model(model)
            inner = core.get_base_model() if hasattr(core, "get_base_model") else core
            if getattr(inner, "_odin_cuda_graphs", False) and model.training:
                # A new micro-batch: the last one's graph outputs (activations, loss) are consumed by now.
                import torch

                torch.compiler.cudagraph_mark_step_begin()
            usable = (
                getattr(inner, "_odin_flce", False)
                and not return_outputs
                and getattr(self, "compute_loss_func", None) is None
                and getattr(self.args, "label_smoothing_factor", 0) == 0
                and getattr(self.args, "loss_type", "nll") in ("nll", "chunked_nll")
                and "labels" in inputs
                and inner.get_output_embeddings() is not None
                and not _ddp_wrapped(model)
            )
            if not usable:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return _flce_loss(self, model, inputs, num_items_in_batch)

    OdinFastTrainer.__name__ = OdinFastTrainer.__qualname__ = f"OdinFast{base.__name__}"
    return OdinFastTrainer
