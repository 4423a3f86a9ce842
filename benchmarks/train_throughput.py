"""Training throughput, side by side on one GPU: plain TRL, unsloth 2025.3.3 (healed by odin) and odin-tuned.

Shapes, data size, timing and the MFU formula follow ``perf-anchors.md`` (docs/benchmarks.md has the
figures and the exact commands). Subcommands:

    prepare  --out .bench                   # here, on CPU: local text -> BPE tokenizer -> 512 x 2048 tokens
    peak     --json F                       # the card's bf16 peak: median 8192^3 matmul
    run      --variant V --shape S|L --json F [--steps 30 --warmup 5]
    all      --out DIR [--budget-s 540]     # every variant, one process each, one after another
    table    RESULTS.json                   # markdown table of a results file
    check    [--data .bench]                # CPU: odin's fused-loss path equals TRL's loss (full FT, LoRA)

Variants (``run --variant``): trl_full, trl_full_nogc, trl_lora, unsloth_lora (needs the user's stack first
on PYTHONPATH: see scripts/gpu/bench_train.sh), odin_full, odin_lora, and the one-lever-at-a-time steps
odin_full_flce (no GC + fused linear CE), odin_full_liger (+ Liger layer kernels, no compile),
odin_full_b16 (odin_full at twice the micro-batch), odin_lora_gc (odin_lora with gradient checkpointing
on), odin_lora_cast32 (odin_lora with PEFT's fp32 input cast kept: ``lora_bf16_compute=False``).
Any odin variant takes lever overrides after ``@``, e.g. ``odin_lora@checkpoint_layers=0.5,memory_budget=0.6``
(``fast.DEFAULTS`` names; numbers, ``true``/``false``); ``all --only`` runs such ``variant:shape`` items
in the order given.

Every run trains on the same token rows (text from the local Python install, tokenized by a BPE
tokenizer trained here) from the same seed, so the loss curves of all modern-stack runs compare step by
step. Only heavy libraries are imported inside functions, so the unsloth variant can import
``odin_compat`` and unsloth before transformers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SEQ = 2048
ROWS = 512
SEED = 1234
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

SHAPES: dict[str, dict[str, Any]] = {
    # SmolLM2-135M-like and Llama-3.2-1B-like, as in perf-anchors.md
    "S": dict(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        rope_theta=100000.0,
        batch=8,
    ),
    "L": dict(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        rope_theta=500000.0,
        batch=4,
    ),
    # CPU logic check only
    "T": dict(
        vocab_size=8192,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_theta=10000.0,
        batch=2,
    ),
}

VARIANTS = [
    "trl_full",
    "trl_full_nogc",
    "trl_lora",
    "unsloth_lora",
    "odin_full",
    "odin_full_flce",
    "odin_full_liger",
    "odin_lora",
    "odin_lora_gc",
    "odin_lora_cast32",
    "odin_full_b16",
]


# ----------------------------------------------------------------------------------------------- FLOPs


def flops_per_token(shape: dict[str, Any], seq: int, lora: bool) -> tuple[float, float]:
    """(N, FLOPs per token): 6N (full) or 4N (LoRA) + 12*L*H*Q*T, N = projections + lm_head (perf-anchors.md)."""
    h, inter, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    heads, kv = shape["num_attention_heads"], shape["num_key_value_heads"]
    hd = h // heads
    per_layer = h * heads * hd * 2 + h * kv * hd * 2 + 3 * h * inter
    n = layers * per_layer + shape["vocab_size"] * h
    attn = 12 * layers * heads * hd * seq
    return n, (4 if lora else 6) * n + attn


# ------------------------------------------------------------------------------------------------ data


def _local_texts() -> list[str]:
    """English-like text that every CPython install has: pydoc topics and stdlib docstrings (no hub)."""
    import ast
    import sysconfig

    import pydoc_data.topics as topics  # isort: skip

    texts = [topics.topics[k] for k in sorted(topics.topics)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if any(p in path.parts for p in ("test", "tests", "site-packages", "idlelib")):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 200:
                    texts.append(doc)
    return texts


def prepare(out: Path, vocab: int = 8192) -> dict[str, Any]:
    import numpy as np
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = _local_texts()
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=specials[0], eos_token=specials[1], pad_token=specials[2]
    )
    fast.model_max_length = SEQ
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out / "tokenizer")
    eos = fast.eos_token_id
    stream: list[int] = []
    for enc in tok.encode_batch(texts):
        stream.extend(enc.ids)
        stream.append(eos)
    need = ROWS * SEQ
    total = len(stream)
    while len(stream) < need:  # cycle the text if it is short (recorded in meta)
        stream.extend(stream[: need - len(stream)])
    arr = np.asarray(stream[:need], dtype=np.uint16).reshape(ROWS, SEQ)
    np.save(out / "tokens.npy", arr)
    meta = {
        "texts": len(texts),
        "stream_tokens": total,
        "rows": ROWS,
        "seq": SEQ,
        "vocab": len(fast),
        "python": sys.version.split()[0],
        "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def load_rows(data: Path, rows: int) -> list[list[int]]:
    import numpy as np

    arr = np.load(data / "tokens.npy")[:rows]
    return arr.astype("int64").tolist()


# ------------------------------------------------------------------------------------------------ peak


def peak(json_path: Path | None) -> dict[str, Any]:
    import torch

    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    times = []
    for _ in range(30):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    t = statistics.median(times)
    res = {
        "kind": "peak",
        "tflops": 2 * n**3 / t / 1e12,
        "median_s": t,
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
    }
    if json_path:
        json_path.write_text(json.dumps(res, indent=1))
    print(f"PEAK {res['tflops']:.1f} TFLOP/s on {res['device']}", flush=True)
    return res


# ------------------------------------------------------------------------------------------- one run


def _callback_class(warmup: int, steps: int, rec: dict[str, Any]):
    import torch
    from transformers import TrainerCallback

    cuda = torch.cuda.is_available()

    class Timer(TrainerCallback):
        """cuda.synchronize + perf_counter at the end of each optimizer step; losses from the logs."""

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            if cuda:
                torch.cuda.synchronize()
            rec["t"].append(time.perf_counter())
            if state.global_step == 1:
                rec["first_step_s"] = rec["t"][-1] - rec["t0"]

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if logs and "loss" in logs:
                rec["loss"].append([state.global_step, float(logs["loss"])])

    return Timer


def _profiler_class(first: int, count: int, rec: dict[str, Any]):
    """torch.profiler over optimizer steps ``first+1 .. first+count``: where a step's host time goes.

    Stored in ``rec["profile"]``: wall and GPU-busy milliseconds per step, and the top host and GPU ops.
    """
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    class Profiler(TrainerCallback):
        prof = None

        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
            if state.global_step == first and self.prof is None:
                torch.cuda.synchronize()
                self.prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
                self.prof.__enter__()
                self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            if self.prof is None or state.global_step != first + count:
                return
            torch.cuda.synchronize()
            wall = time.perf_counter() - self.t0
            self.prof.__exit__(None, None, None)
            events = self.prof.key_averages()
            # Kernel events only: an op's own device time repeats its kernels' time.
            gpu_us = sum(
                e.time_range.elapsed_us() for e in self.prof.events() if e.device_type == DeviceType.CUDA
            )
            rec["profile"] = {
                "steps": count,
                "wall_ms_per_step": 1e3 * wall / count,
                "gpu_busy_ms_per_step": gpu_us / 1e3 / count,
                "kernels_per_step": sum(1 for e in self.prof.events() if e.device_type == DeviceType.CUDA)
                / count,
                "top_host": events.table(
                    sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=70
                ),
                "top_gpu": events.table(
                    sort_by="self_device_time_total", row_limit=15, max_name_column_width=70
                ),
            }
            self.prof = None

    return Profiler


def _sync_class(first: int, count: int, rec: dict[str, Any]):
    """Where the host waits for the GPU: ``torch.cuda.set_sync_debug_mode("warn")`` over optimizer steps
    ``first+1 .. first+count``, each synchronizing call counted by its call site (the innermost frames outside
    torch). Stored in ``rec["syncs"]``: {site: calls per step}."""
    import collections
    import traceback
    import warnings

    import torch
    from transformers import TrainerCallback

    sites: collections.Counter[str] = collections.Counter()

    def record(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        skip = ("/torch/", "/warnings.py", "/contextlib.py")
        frames = [f for f in traceback.extract_stack()[:-1] if not any(s in f.filename for s in skip)][-4:]
        sites[" <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames))] += 1

    class Syncs(TrainerCallback):
        on = False

        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
            if state.global_step == first and not self.on:
                self.on, self.saved = True, warnings.showwarning
                warnings.showwarning = record
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            if self.on and state.global_step == first + count:
                torch.cuda.set_sync_debug_mode("default")
                warnings.showwarning, self.on = self.saved, False
                rec["syncs"] = {site: n / count for site, n in sites.most_common(20)}

    return Syncs


def _build_model(shape: dict[str, Any], seed: int, device: str, tokenizer: Any, legacy: bool = False) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = {k: v for k, v in shape.items() if k != "batch"}
    config = LlamaConfig(
        **cfg,
        max_position_embeddings=SEQ,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if not legacy:
        config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(old)
    return model


def _sft_args(SFTConfig: Any, out_dir: str, batch: int, steps: int, **kw: Any) -> Any:
    return SFTConfig(
        output_dir=out_dir,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        max_steps=steps,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        seed=SEED,
        max_length=SEQ,
        dataloader_drop_last=True,
        **kw,
    )


def parse_levers(spec: str) -> dict[str, Any]:
    """``a=0.5,b=true`` -> {"a": 0.5, "b": True}: the lever overrides after a variant's ``@``."""
    levers: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, _, raw = item.partition("=")
        levers[key] = {"true": True, "false": False}.get(raw.lower(), None)
        if levers[key] is None:
            try:
                levers[key] = float(raw)
            except ValueError:  # a word: compile_mode=reduce-overhead
                levers[key] = raw
    return levers


def run_one(
    name: str, shape_name: str, data: Path, steps: int, warmup: int, rows: int, work: Path
) -> dict[str, Any]:
    variant, _, spec = name.partition("@")
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
    if variant == "unsloth_lora":
        return run_unsloth(shape_name, data, steps, warmup, rows, work)
    if variant.startswith("odin"):
        import odin_compat  # noqa: F401  (odin's trainer imports it first too)
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PreTrainedTokenizerFast
    from trl import SFTConfig, SFTTrainer

    shape = SHAPES[shape_name]
    if variant == "odin_full_b16":  # the larger micro-batch lever: twice the rows per step
        shape = dict(shape, batch=2 * shape["batch"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = PreTrainedTokenizerFast.from_pretrained(data / "tokenizer")
    model = _build_model(shape, SEED, device, tokenizer)
    lora = "lora" in variant
    peft_config = (
        LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
        if lora
        else None
    )
    ds = Dataset.from_dict({"input_ids": load_rows(data, rows)})
    extra: dict[str, Any] = {}
    if device == "cpu":
        extra = {"bf16": False, "use_cpu": True}
    if variant == "trl_full_nogc":
        extra["gradient_checkpointing"] = False
    args = _sft_args(SFTConfig, str(work / "out"), shape["batch"], steps, **extra)

    plan = None
    trainer_cls = SFTTrainer
    spec_levers = parse_levers(spec)
    profile_steps = int(spec_levers.pop("profile", 0))  # any variant: @profile=3 profiles 3 steps
    sync_steps = int(spec_levers.pop("syncs", 0))  # any variant: @syncs=2 lists the host syncs of 2 steps
    if variant.startswith("odin"):
        sys.path.insert(0, str(Path(os.environ.get("ODIN_SRC", ROOT / "src"))))
        from odin_slm import fast

        levers: dict[str, Any] = {}
        if variant == "odin_full_flce":
            levers = {"compile_layers": False, "liger_layers": False}
        elif variant == "odin_full_liger":
            levers = {"compile_layers": False, "liger_layers": True}
        elif variant == "odin_lora_cast32":
            levers = {"lora_bf16_compute": False}
        elif variant == "odin_lora_gc":
            levers = {"lora_gradient_checkpointing": True}
        levers.update(spec_levers)
        plan = fast.tune(model, args, lora=lora, **levers)
        print(f"PLAN {plan}", flush=True)
        trainer_cls = fast.trainer_class(SFTTrainer)

    torch.manual_seed(SEED)  # LoRA init draws from the global RNG
    trainer = trainer_cls(
        model=model, args=args, train_dataset=ds, processing_class=tokenizer, peft_config=peft_config
    )
    rec: dict[str, Any] = {"t": [], "loss": []}
    trainer.add_callback(_callback_class(warmup, steps, rec))
    if profile_steps and device == "cuda":
        trainer.add_callback(_profiler_class(warmup + 2, profile_steps, rec))
    if sync_steps and device == "cuda":
        trainer.add_callback(_sync_class(warmup + 2, sync_steps, rec))
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rec["t0"] = time.perf_counter()
    trainer.train()
    res = _summarise(name, shape_name, shape, steps, warmup, rec, lora)
    res["plan"] = plan.as_dict() if plan else None
    for key in ("profile", "syncs"):
        if key in rec:
            res[key] = rec[key]
    for site, per_step in rec.get("syncs", {}).items():
        print(f"SYNC {per_step:g}/step {site}", flush=True)
    res["trainable_params"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    res["gradient_checkpointing"] = bool(args.gradient_checkpointing)
    res["optim"] = str(args.optim)
    res["trainer"] = type(trainer).__name__
    return res


def _summarise(
    variant: str,
    shape_name: str,
    shape: dict[str, Any],
    steps: int,
    warmup: int,
    rec: dict[str, Any],
    lora: bool,
) -> dict[str, Any]:
    import torch

    t = rec["t"]
    timed = len(t) - warmup
    wall = t[-1] - t[warmup - 1] if timed > 0 else float("nan")
    tokens = timed * shape["batch"] * SEQ
    n, fpt = flops_per_token(shape, SEQ, lora)
    res = {
        "variant": variant,
        "shape": shape_name,
        "steps": len(t),
        "warmup": warmup,
        "timed_steps": timed,
        "batch": shape["batch"],
        "seq": SEQ,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "step_ms": 1e3 * wall / max(timed, 1),
        "first_step_s": rec.get("first_step_s"),
        "n_params_formula": n,
        "flops_per_token": fpt,
        "loss": rec["loss"],
    }
    if torch.cuda.is_available():
        res["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
        res["device"] = torch.cuda.get_device_name()
    import importlib.metadata as md

    res["versions"] = {}
    for name in (
        "torch",
        "transformers",
        "trl",
        "peft",
        "accelerate",
        "datasets",
        "liger_kernel",
        "unsloth",
        "unsloth_zoo",
        "xformers",
        "triton",
    ):
        try:
            res["versions"][name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return res


def run_unsloth(
    shape_name: str, data: Path, steps: int, warmup: int, rows: int, work: Path
) -> dict[str, Any]:
    """unsloth 2025.3.3 LoRA r16/alpha16 on 7 projections, the user's settings, healed by ``import odin_compat``."""
    sys.path.insert(0, os.getcwd())  # unsloth_zoo writes and imports unsloth_compiled_cache/ from the cwd
    import odin_compat  # noqa: F401  (first: heals unsloth's rebuilt Accelerator.prepare)

    # isort: split
    from unsloth import FastLanguageModel  # unsloth wants to come before transformers

    # isort: split
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast
    from trl import SFTConfig, SFTTrainer

    shape = SHAPES[shape_name]
    tokenizer = PreTrainedTokenizerFast.from_pretrained(data / "tokenizer")
    mdir = work / f"model-{shape_name}"
    model = _build_model(shape, SEED, "cuda", tokenizer, legacy=True)
    model.save_pretrained(mdir)
    tokenizer.save_pretrained(mdir)
    del model
    torch.cuda.empty_cache()
    model, tok = FastLanguageModel.from_pretrained(
        str(mdir), max_seq_length=SEQ, dtype=torch.bfloat16, load_in_4bit=False, local_files_only=True
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=16,
        lora_alpha=16,
        lora_dropout=0,
        target_modules=LORA_TARGETS,
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=SEED,
    )
    row_ids = load_rows(data, rows)
    # unsloth's patched _prepare_dataset reads dataset[0]["text"] (a BOS check) even for tokenized rows;
    # TRL 0.17 then sees input_ids, skips tokenizing, and its collator reads input_ids only.
    ds = Dataset.from_dict({"input_ids": row_ids, "text": ["(pre-tokenized)"] * len(row_ids)})
    common = dict(
        output_dir=str(work / "out"),
        per_device_train_batch_size=shape["batch"],
        gradient_accumulation_steps=1,
        max_steps=steps,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        seed=SEED,
        bf16=True,
        optim="adamw_torch_fused",
        dataloader_drop_last=True,
    )
    try:  # the user's spelling (unsloth's patched SFTConfig takes it)
        args = SFTConfig(**common, max_seq_length=SEQ)
    except TypeError:
        args = SFTConfig(**common)
    if hasattr(args, "max_length"):
        args.max_length = SEQ
    trainer = SFTTrainer(model=model, processing_class=tok, train_dataset=ds, args=args)
    rec: dict[str, Any] = {"t": [], "loss": []}
    trainer.add_callback(_callback_class(warmup, steps, rec))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    rec["t0"] = time.perf_counter()
    trainer.train()
    res = _summarise("unsloth_lora", shape_name, shape, steps, warmup, rec, True)
    res["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    res["gradient_checkpointing"] = "unsloth"
    res["optim"] = str(args.optim)
    try:
        res["odin_healed"] = [list(x) for x in odin_compat._heal.healed()]
    except Exception as exc:  # reporting only
        res["odin_healed"] = repr(exc)
    return res


# ---------------------------------------------------------------------------------------------- check


def check_loss(data: Path, tol: float = 1e-5) -> int:
    """CPU check of ``fast.trainer_class``'s loss path against TRL's own ``compute_loss``, full FT and LoRA.

    A torch reference (logits + cross-entropy) stands in for Liger's Triton kernel, injected as the module
    ``_flce_loss`` imports, so this runs without a GPU or liger-kernel. Returns 0 when both agree within ``tol``.
    """
    import types

    import torch.nn.functional as F
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PreTrainedTokenizerFast
    from trl import SFTConfig, SFTTrainer

    def reference(inp, weight, target, bias=None, reduction="mean", **_: Any):  # noqa: ANN001
        return F.cross_entropy((inp @ weight.t()).float(), target, ignore_index=-100, reduction=reduction)

    names = ["liger_kernel", "liger_kernel.transformers", "liger_kernel.transformers.functional"]
    saved = {n: sys.modules.get(n) for n in names}
    fake = types.ModuleType(names[-1])
    fake.liger_fused_linear_cross_entropy = reference  # type: ignore[attr-defined]
    for n in names[:-1]:
        sys.modules[n] = types.ModuleType(n)
    sys.modules[names[-1]] = fake
    sys.path.insert(0, str(Path(os.environ.get("ODIN_SRC", ROOT / "src"))))
    from odin_slm import fast

    worst = 0.0
    try:
        tok = PreTrainedTokenizerFast.from_pretrained(data / "tokenizer")
        for lora in (False, True):
            model = _build_model(SHAPES["T"], SEED, "cpu", tok)
            args = _sft_args(SFTConfig, "/tmp/odin-check", 2, 2, bf16=False, use_cpu=True)
            peft = (
                LoraConfig(r=16, lora_alpha=16, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
                if lora
                else None
            )
            ds = Dataset.from_dict({"input_ids": load_rows(data, 4)})
            tr = fast.trainer_class(SFTTrainer)(
                model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=peft
            )
            batch = next(iter(tr.get_train_dataloader()))
            n = (batch["labels"] != -100).sum()
            inner = tr.model.get_base_model() if lora else tr.model
            inner._odin_flce = False
            base = float(tr.compute_loss(tr.model, dict(batch), num_items_in_batch=n))
            inner._odin_flce = True
            for kernel in fast.LOSS_KERNELS:
                inner._odin_loss_kernel = kernel
                tr.model.zero_grad(set_to_none=True)
                mine = tr.compute_loss(tr.model, dict(batch), num_items_in_batch=n)
                mine.backward()
                grads = sum(p.grad is not None for p in tr.model.parameters() if p.requires_grad)
                rel = abs(float(mine) - base) / abs(base)
                worst = max(worst, rel)
                print(
                    f"CHECK lora={lora} loss_kernel={kernel} trl={base:.6f} odin={float(mine):.6f} rel={rel:.1e} "
                    f"params_with_grad={grads}"
                )
                if grads == 0:
                    return 1
    finally:
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod
    return 0 if worst <= tol else 1


# ------------------------------------------------------------------------------------------ orchestra

# (variant, shape) in priority order: the goals' rows first, the one-lever steps last.
PLAN = [
    ("trl_full", "S"), ("trl_full_nogc", "S"), ("odin_full_flce", "S"), ("odin_full_liger", "S"), ("odin_full", "S"),
    ("trl_lora", "S"), ("unsloth_lora", "S"), ("odin_lora", "S"), ("odin_lora_gc", "S"), ("odin_lora_cast32", "S"),
    ("trl_full", "L"), ("trl_full_nogc", "L"), ("odin_full", "L"),
    ("trl_lora", "L"), ("unsloth_lora", "L"), ("odin_lora", "L"), ("odin_lora_gc", "L"),
    ("odin_lora_cast32", "L"), ("odin_full_flce", "L"), ("odin_full_liger", "L"), ("odin_full_b16", "S"),
]  # fmt: skip
EST_S = {"unsloth_lora": 80, "odin": 60}  # rough worst case per run (s), to skip what cannot finish


def orchestrate(
    out: Path,
    data: Path,
    budget: float,
    steps: int,
    warmup: int,
    rows: int,
    only: list[str] | None,
    shape_map: dict[str, str] | None = None,
) -> dict[str, Any]:
    shape_map = shape_map or {}
    t_start = time.monotonic()
    work = Path(os.environ.get("BENCH_WORK", "/tmp/odin-bench"))
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)  # not under out: the device returns at most 8 files
    results: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "runs": [],
        "steps": steps,
        "warmup": warmup,
        "rows": rows,
    }
    meta = data / "meta.json"
    if meta.exists():
        results["data"] = json.loads(meta.read_text())
    res_path = out / "train_throughput.json"

    def save() -> None:
        res_path.write_text(json.dumps(results, indent=1))

    p = subprocess.run(
        [sys.executable, __file__, "peak", "--json", str(work / "peak.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    (work / "logs" / "peak.log").write_text(p.stdout + p.stderr)
    print(p.stdout + p.stderr[-2000:], flush=True)
    results["peak"] = json.loads((work / "peak.json").read_text()) if p.returncode == 0 else None
    save()
    if only and all(":" in item for item in only):  # explicit variant:shape items, in the order given
        plan = [(v, shape_map.get(s, s)) for v, _, s in (item.rpartition(":") for item in only)]
    else:
        plan = [(v, shape_map.get(s, s)) for v, s in PLAN if not only or f"{v}:{s}" in only or v in only]
    for variant, shape in plan:
        left = budget - (time.monotonic() - t_start)
        est = EST_S["unsloth_lora"] if variant == "unsloth_lora" else 45
        if left < est:
            results["runs"].append(
                {"variant": variant, "shape": shape, "skipped": f"budget ({left:.0f}s left)"}
            )
            print(f"SKIP {variant} {shape}: {left:.0f}s left", flush=True)
            save()
            continue
        name = f"{variant}-{shape}".replace("@", "_").replace(",", "_").replace("=", "")
        rdir = work / name
        rdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if variant == "unsloth_lora":
            env["PYTHONPATH"] = os.environ.get("UNSLOTH_PYTHONPATH", env.get("PYTHONPATH", ""))
            env["LD_LIBRARY_PATH"] = os.environ.get("UNSLOTH_LD_LIBRARY_PATH", env.get("LD_LIBRARY_PATH", ""))
        cmd = [
            sys.executable,
            __file__,
            "run",
            "--variant",
            variant,
            "--shape",
            shape,
            "--data",
            str(data),
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            "--rows",
            str(rows),
            "--json",
            str(rdir / "result.json"),
            "--work",
            str(rdir),
        ]
        t0 = time.monotonic()
        timeout = max(20.0, min(left - 5, 240.0))
        with open(logs / f"{name}.log", "w") as log:
            try:
                rc = subprocess.run(
                    cmd, cwd=rdir, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
                ).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        secs = time.monotonic() - t0
        if rc == 0 and (rdir / "result.json").exists():
            r = json.loads((rdir / "result.json").read_text())
            r["process_s"] = secs
            pk = results.get("peak") or {}
            if pk.get("tflops"):
                r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / (pk["tflops"] * 1e12)
            results["runs"].append(r)
            print(
                f"DONE {name}: {r['tokens_per_s']:,.0f} tok/s, MFU {r.get('mfu', 0):.1%}, "
                f"{r.get('peak_mem_gib', 0):.1f} GiB, loss {r['loss'][0][1] if r['loss'] else None} -> "
                f"{r['loss'][-1][1] if r['loss'] else None} ({secs:.0f}s)",
                flush=True,
            )
        else:
            tail = (logs / f"{name}.log").read_text(errors="replace")[-1500:]
            results["runs"].append(
                {"variant": variant, "shape": shape, "failed": str(rc), "process_s": secs, "log_tail": tail}
            )
            print(f"FAIL {name}: rc={rc} ({secs:.0f}s)\n{tail[-800:]}", flush=True)
        save()
    results["total_s"] = time.monotonic() - t_start
    save()
    print(table(results), flush=True)
    return results


def loss_compare(results: dict[str, Any], a: str, b: str, shape: str) -> dict[str, Any] | None:
    runs = {(r["variant"], r["shape"]): r for r in results["runs"] if "loss" in r}
    if (a, shape) not in runs or (b, shape) not in runs:
        return None
    la, lb = dict(map(tuple, runs[(a, shape)]["loss"])), dict(map(tuple, runs[(b, shape)]["loss"]))
    common = sorted(set(la) & set(lb))
    rel = [abs(la[s] - lb[s]) / abs(la[s]) for s in common]
    return {
        "steps": len(common),
        "max_rel": max(rel) if rel else None,
        "mean_rel": statistics.fmean(rel) if rel else None,
        "first": (la[common[0]], lb[common[0]]) if common else None,
        "last": (la[common[-1]], lb[common[-1]]) if common else None,
    }


def table(results: dict[str, Any]) -> str:
    pk = (results.get("peak") or {}).get("tflops")
    lines = [
        f"peak bf16 {pk:.0f} TFLOP/s" if pk else "peak: n/a",
        "| shape | variant | tokens/s | MFU | peak GiB | step ms | loss first -> last |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        if "tokens_per_s" not in r:
            lines.append(
                f"| {r['shape']} | {r['variant']} | {r.get('skipped') or 'failed ' + r.get('failed', '')} "
                "| | | | |"
            )
            continue
        loss = f"{r['loss'][0][1]:.4f} -> {r['loss'][-1][1]:.4f}" if r["loss"] else ""
        lines.append(
            f"| {r['shape']} | {r['variant']} | {r['tokens_per_s']:,.0f} | {r.get('mfu', 0):.1%} | "
            f"{r.get('peak_mem_gib', 0):.2f} | {r['step_ms']:.1f} | {loss} |"
        )
    for shape in ("S", "L", "T"):
        for a, b in (("trl_full", "odin_full"), ("trl_lora", "odin_lora"), ("trl_full_nogc", "odin_full")):
            c = loss_compare(results, a, b, shape)
            if c and c["max_rel"] is not None:
                lines.append(
                    f"loss {shape} {a} vs {b}: {c['steps']} steps, max rel diff {c['max_rel']:.2e}, "
                    f"mean {c['mean_rel']:.2e}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, default=ROOT / ".bench")
    p = sub.add_parser("peak")
    p.add_argument("--json", type=Path)
    for name in ("run", "all"):
        p = sub.add_parser(name)
        p.add_argument("--data", type=Path, default=ROOT / ".bench")
        p.add_argument("--steps", type=int, default=30)
        p.add_argument("--warmup", type=int, default=5)
        p.add_argument("--rows", type=int, default=ROWS)
        if name == "run":
            p.add_argument("--variant", required=True, help="a variant, optionally with @lever=value,...")
            p.add_argument("--shape", choices=sorted(SHAPES), required=True)
            p.add_argument("--json", type=Path, required=True)
            p.add_argument("--work", type=Path, default=Path("."))
        else:
            p.add_argument("--out", type=Path, required=True)
            p.add_argument("--budget-s", type=float, default=540)
            p.add_argument("--only", nargs="*", help="variant or variant:shape names")
            p.add_argument("--cpu-check", action="store_true", help="run the plan on the tiny shape T")
    p = sub.add_parser("check", help="CPU check of odin's fused-loss path against TRL's loss")
    p.add_argument("--data", type=Path, default=ROOT / ".bench")
    p = sub.add_parser("table")
    p.add_argument("results", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        print(json.dumps(prepare(a.out), indent=1))
    elif a.cmd == "peak":
        peak(a.json)
    elif a.cmd == "run":
        res = run_one(a.variant, a.shape, a.data, a.steps, a.warmup, a.rows, a.work)
        a.json.write_text(json.dumps(res, indent=1))
        print(f"RESULT {a.variant} {a.shape} {res['tokens_per_s']:.0f} tok/s", flush=True)
    elif a.cmd == "all":
        a.out.mkdir(parents=True, exist_ok=True)
        orchestrate(
            a.out,
            a.data,
            a.budget_s,
            a.steps,
            a.warmup,
            a.rows,
            a.only,
            {"S": "T", "L": "T"} if a.cpu_check else None,
        )
    elif a.cmd == "check":
        return check_loss(a.data)
    elif a.cmd == "table":
        print(table(json.loads(a.results.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
