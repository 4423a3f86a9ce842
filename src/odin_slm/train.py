"""Fine-tune a small causal LM with TRL's SFTTrainer: ``python -m odin_slm.train`` (or ``odin-train``).

Read top to bottom, :func:`run` is the whole recipe:

1. parse defaults < YAML (``--config``) < flags, with HF/TRL names;
2. read and validate the data (errors name file:line);
3. load the model (a Hub id through the HF cache, a local HF folder or GGUF; default:
   SmolLM2-135M-Instruct, offline);
4. score exact match on the eval split before training;
5. add LoRA (or train all weights) and train with the chosen engine;
6. score exact match again, save the model/adapter + tokenizer, metrics.json, the loss plot
   and the environment manifest.

SIGINT/SIGTERM save a checkpoint and exit non-zero; ``--resume_from_checkpoint`` continues it.
"""

import odin_compat  # noqa: F401,I001  (first: its repairs apply as the HF stack loads)

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from odin_slm import preflight, report
from odin_slm.checkpoints import CheckpointError, resolve_resume, staged_dir
from odin_slm.config import ConfigError, parse_args
from odin_slm.distributed import launcher_rank, new_digest, sum_over_ranks, weights_digest, world_size
from odin_slm.data import CHAT_FORMATS, DataError, PadCollator, load_splits, tokenize
from odin_slm.model import ModelError

log = logging.getLogger("odin_slm")

EXIT_BAD_INPUT = 2
EXIT_OOM = 3
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted:
    """Set by SIGINT/SIGTERM; the engines check it after each optimizer step, save and stop."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in SIGNAL_EXIT:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum
        log.warning(
            "Got %s: saving a checkpoint after this step (signal again to abort).",
            signal.Signals(signum).name,
        )
        self.restore()  # a second signal acts at once

    def __bool__(self) -> bool:
        return self.signum is not None


def choose_engine(requested: str) -> str:
    """auto -> unsloth when it is installed and one process trains on a GPU, else trl.

    Under torchrun / accelerate launch auto picks trl: unsloth releases before mid-2025 refuse
    several GPUs ("Unsloth currently does not support multi GPU setups"); --engine unsloth
    still lets unsloth decide.
    """
    import importlib.util

    import torch

    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if requested == "unsloth" and not (has_unsloth and torch.cuda.is_available()):
        raise ConfigError(
            "--engine unsloth needs the unsloth package and a CUDA GPU; use --engine trl or loop."
        )
    if requested == "auto":
        return "unsloth" if has_unsloth and torch.cuda.is_available() and world_size() == 1 else "trl"
    return requested


def train_with_trl(
    model,
    tokenizer,
    train_ds,
    collator,
    args,
    stop: Interrupted,
    resume: str | None,
    *,
    fast_levers: bool = False,
    lora: bool = False,
    eval_ds: list[dict] | None = None,
) -> dict:
    """The standard path: TRL's SFTTrainer on the tokenized dataset.

    ``fast_levers`` (CUDA only; the caller checks) applies ``odin_slm.fast``: each lever falls back to the
    plain path, with its reason logged, where its kernel (Triton, liger-kernel) is missing.
    """
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTTrainer

    trainer_cls = SFTTrainer
    plan = None
    if fast_levers:
        try:
            from odin_slm import fast

            plan = fast.tune(model, args, lora=lora)  # the model already carries its LoRA adapters
            trainer_cls = fast.trainer_class(SFTTrainer)
            log.info("fast levers: %s", plan)
        except Exception as exc:  # a lever that breaks must not stop training: plain SFTTrainer instead
            log.warning("fast levers unavailable, plain SFTTrainer: %s: %s", type(exc).__name__, exc)
            plan = {"error": f"{type(exc).__name__}: {exc}"}

    class StopOnSignal(TrainerCallback):
        def on_step_end(self, _args, state, control, **_kw):
            _test_signal(state.global_step)
            if stop:
                control.should_save = True
                control.should_training_stop = True
            return control

    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_ds),
        eval_dataset=Dataset.from_list(eval_ds) if eval_ds else None,
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=[StopOnSignal()],
    )
    trainer.train(resume_from_checkpoint=resume)
    history = trainer.state.log_history
    losses = [{"step": e["step"], "loss": e["loss"]} for e in history if "loss" in e]
    eval_losses = [{"step": e["step"], "eval_loss": e["eval_loss"]} for e in history if "eval_loss" in e]
    fast_plan = plan.as_dict() if hasattr(plan, "as_dict") else plan
    # FSDP leaves each rank a shard of the weights: every rank takes part in gathering a full
    # copy onto rank 0 (an empty dict elsewhere), from which rank 0 rebuilds a plain model.
    fsdp = bool(getattr(trainer, "is_fsdp_enabled", False))
    return {
        "losses": losses,
        "eval_losses": eval_losses,
        "global_step": trainer.state.global_step,
        "model": trainer.model,
        "full_state_dict": trainer.accelerator.get_state_dict(trainer.model) if fsdp else None,
        "fast": fast_plan,
    }


def _test_signal(step: int) -> None:
    """Tests deliver a real SIGTERM at a chosen step (ODIN_SLM_SIGNAL_AT_STEP) to exercise the handler."""
    at = os.environ.get("ODIN_SLM_SIGNAL_AT_STEP")
    if at and int(at) == step:
        os.kill(os.getpid(), signal.SIGTERM)


def _import_unsloth_early(argv: list[str]) -> None:
    """unsloth patches transformers/trl as it imports, so it must load before them when it will be used.

    Decided by choose_engine, before the arguments are parsed: from --engine on the command line,
    else auto (an engine named only in the YAML file is read too late for this).
    """
    requested = "auto"
    for i, arg in enumerate(argv):
        if arg.startswith("--engine="):
            requested = arg.partition("=")[2]
        elif arg == "--engine" and i + 1 < len(argv):
            requested = argv[i + 1]
    try:
        if choose_engine(requested) == "unsloth":
            import unsloth  # noqa: F401
    except ConfigError:
        return  # run() reports it with the other argument errors


def _value(option: Any) -> Any:
    return getattr(option, "value", option)  # enum options print as their value


def check_options(script: Any, model_args: Any, args: Any, engine: str) -> bool:
    """Refuse option combinations that would be ignored, before anything loads; True when evaluating."""
    reports = args.report_to if isinstance(args.report_to, list) else [args.report_to]
    reports = [_value(r) for r in reports if r and _value(r) != "none"]
    evaluating = _value(args.eval_strategy) != "no"  # SFTTrainer then computes eval_loss on the eval rows
    if engine == "loop" and (reports or evaluating):
        what = (
            f"--report_to {' '.join(reports)}" if reports else f"--eval_strategy {_value(args.eval_strategy)}"
        )
        raise ConfigError(f"{what}: the loop engine does not report or evaluate; use --engine trl.")
    template = getattr(args, "chat_template_path", None)
    if template and not (template.endswith((".jinja", ".j2")) and Path(template).is_file()):
        # A tokenizer path would make SFTTrainer add tokens and resize the model after odin tokenized.
        raise ConfigError(
            f"--chat_template_path {template}: odin-train takes an existing .jinja or .j2 file."
        )
    if script.merge_lora and not model_args.use_peft:
        raise ConfigError("--merge_lora merges a LoRA adapter: it needs --use_peft.")
    return evaluating


def run(argv: list[str]) -> int:
    started = time.perf_counter()
    _import_unsloth_early(argv)
    # 1. Arguments.
    script, model_args, args, provenance = parse_args(argv)
    engine = choose_engine(script.engine)
    preflight.check_numbers(script, args)
    preflight.check_writable(args.output_dir)
    evaluating = check_options(script, model_args, args, engine)
    resume = resolve_resume(args.resume_from_checkpoint, args.output_dir)
    stale = preflight.check_reuse(args.output_dir, resume, args.overwrite_output_dir)
    out = Path(args.output_dir)

    import torch
    from transformers import set_seed

    set_seed(args.seed)

    # 2. Data: read and validate everything before the (slow) model load.
    splits = load_splits(
        script.dataset_name,
        script.eval_dataset_name,
        script.eval_samples,
        args.seed,
        config=script.dataset_config,
        train_split=script.dataset_train_split,
        test_split=script.dataset_test_split,
        revision=script.dataset_revision,
    )
    if getattr(args, "assistant_only_loss", False) and splits.fmt not in CHAT_FORMATS:
        raise ConfigError(
            f"--assistant_only_loss needs chat 'messages' rows; {splits.source} has {splits.fmt!r} rows."
        )
    if evaluating and not splits.eval:
        raise ConfigError(
            "--eval_strategy needs eval rows: pass --eval_dataset_name, or a dataset "
            "with a test split, and keep --eval_samples above 0."
        )
    log.info(
        "Data: %d train / %d eval rows (%s) from %s",
        len(splits.train),
        len(splits.eval),
        splits.fmt,
        splits.source,
    )

    # 3. Model.
    if engine == "unsloth":
        from odin_slm.model import load_unsloth

        model, tokenizer, model_path = load_unsloth(model_args, args)
    else:
        from odin_slm.model import load_args, load_model_and_tokenizer

        # fp32 weights (unless --dtype); --bf16 trains under autocast with fp32 master weights, as Trainer does.
        model, tokenizer, model_path = load_model_and_tokenizer(
            model_args.model_name_or_path, **load_args(model_args, args)
        )
        if torch.cuda.is_available():
            model.to(args.device)  # this rank's GPU under torchrun / accelerate launch
    if getattr(args, "chat_template_path", None):  # before tokenizing; SFTTrainer sets the same text again
        tokenizer.chat_template = Path(args.chat_template_path).read_text(encoding="utf-8")
    train_ds = tokenize(splits.train, splits.fmt, tokenizer, args.max_length)
    # Marked so that the counting collator leaves eval batches out of the training tokens.
    eval_ds = (
        [{**r, "odin_eval": 1} for r in tokenize(splits.eval, splits.fmt, tokenizer, args.max_length)]
        if evaluating
        else None
    )
    if engine == "unsloth":
        # unsloth's patched SFTTrainer._prepare_dataset reads dataset[0]["text"] (a BOS check) even
        # for tokenized rows; an empty text field satisfies it, and the collator never reads it.
        train_ds = [{**row, "text": ""} for row in train_ds]
        eval_ds = [{**row, "text": ""} for row in eval_ds] if eval_ds else None
    collator = CountingCollator(PadCollator(tokenizer.pad_token_id))

    # Under torchrun / accelerate launch every rank trains; only rank 0 scores and writes outputs.
    # (args.device sets up the process group, as Trainer would; before it every rank says 0.)
    _ = args.device
    main_process = args.process_index == 0 and launcher_rank() == 0
    log.info(
        "Rank %d of %d, odin_compat %s",
        args.process_index,
        args.world_size,
        "active" if odin_compat.active() else "inactive",
    )

    # 4. The metric before training.
    from odin_slm.evaluate import exact_match

    eval_rows = splits.eval if main_process else []
    before = exact_match(
        model, tokenizer, eval_rows, splits.fmt, script.eval_max_new_tokens, unsloth=engine == "unsloth"
    )
    if before:
        log.info(
            "Exact match before training: %.3f (%d/%d)", before["exact_match"], before["correct"], before["n"]
        )

    # 5. Train.
    if model_args.use_peft and engine != "unsloth":
        from odin_slm.model import apply_lora

        set_seed(args.seed)  # the adapter's initial weights do not depend on the eval above
        model = apply_lora(model, model_args)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "Engine %s, %s, %d trainable parameters",
        engine,
        "LoRA" if model_args.use_peft else "full fine-tune",
        trainable,
    )

    # A metrics.json from an earlier run in this folder would claim this one succeeded.
    if main_process:
        preflight.clear_previous_run(stale)  # --overwrite_output_dir
        (out / "metrics.json").unlink(missing_ok=True)
    stop = Interrupted()
    stop.install()
    t0 = time.perf_counter()
    try:
        if engine == "loop":
            from odin_slm.loop import train_loop

            result = train_loop(model, train_ds, collator, args, stop, resume, on_step=_test_signal)
        else:
            result = train_with_trl(
                model,
                tokenizer,
                train_ds,
                collator,
                args,
                stop,
                resume,
                fast_levers=script.odin_fast and torch.cuda.is_available(),
                lora=model_args.use_peft,
                eval_ds=eval_ds,
            )
    finally:
        stop.restore()
    train_seconds = time.perf_counter() - t0
    model = result["model"]
    if stop:
        log.error(
            "Interrupted at step %d; checkpoint saved in %s. Resume with: --resume_from_checkpoint latest --output_dir %s",
            result["global_step"],
            out,
            out,
        )
        return SIGNAL_EXIT.get(stop.signum, 1)

    # 6. The metric after training, and the outputs (metrics.json last: it marks a finished run).
    tokens = sum_over_ranks(collator.tokens) if args.world_size > 1 else collator.tokens
    if args.world_size == 1 and world_size() > 1:
        log.warning(
            "Launched as %d processes, but training ran without data parallelism (engine %s): "
            "every rank trained alone on all the data; rank 0's result is kept. Use --engine trl for multi-GPU.",
            world_size(),
            engine,
        )
    sharded = result.get("full_state_dict") is not None
    if args.world_size > 1:  # evidence of data parallelism: different shards, same weights
        log.info(
            "Rank %d: trained on %d tokens (data digest %s), weights digest %s",
            args.process_index,
            collator.tokens,
            collator.digest.hexdigest(),
            "(sharded by FSDP)" if sharded else weights_digest(model),
        )
    if not main_process:
        return 0
    if sharded:
        from odin_slm.model import model_from_state_dict

        model = model_from_state_dict(
            model_args, result["full_state_dict"], args.device, trust_remote_code=args.trust_remote_code
        )
    after = exact_match(
        model, tokenizer, eval_rows, splits.fmt, script.eval_max_new_tokens, unsloth=engine == "unsloth"
    )
    if after:
        log.info(
            "Exact match after training: %.3f (%d/%d)", after["exact_match"], after["correct"], after["n"]
        )
    final = out / "final"
    with staged_dir(final) as staging:  # a kill mid-save leaves the previous final/ (or none)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
    merged = None
    if script.merge_lora:  # after the adapter is saved: merging folds it into the base weights
        from odin_slm.model import save_merged

        with staged_dir(out / "merged") as staging:
            save_merged(model, tokenizer, staging)
        merged = out / "merged"
    env = report.environment()
    env["world_size"] = args.world_size
    report.write_json(out / "environment.json", env)
    plotted = report.plot_losses(result["losses"], out / "loss.png", f"{engine} · {model_path.name}")
    metrics = {
        "engine": engine,
        "model": str(model_path),
        "method": "lora" if model_args.use_peft else "full",
        "trainable_parameters": trainable,
        "dataset": splits.source,
        "format": splits.fmt,
        "train_rows": len(splits.train),
        "eval_rows": len(splits.eval),
        "global_step": result["global_step"],
        "resumed_from": resume,
        "loss_curve": result["losses"],
        "eval_loss_curve": result.get("eval_losses", []),
        "eval_before": before,
        "eval_after": after,
        "train_seconds": round(train_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
        "world_size": args.world_size,
        "train_tokens": tokens,  # summed over ranks
        "tokens_per_second": round(tokens / train_seconds, 1) if train_seconds > 0 else None,
        **report.peak_memory(),
        "outputs": {
            "model": str(final),
            "merged_model": str(merged) if merged else None,
            "loss_plot": str(out / "loss.png") if plotted else None,
            "environment": str(out / "environment.json"),
        },
        "config": {"file": provenance["config_file"], "argv": provenance["argv"]},
        "versions": {
            k: env["packages"].get(k) for k in ("torch", "transformers", "trl", "accelerate", "peft")
        },
    }
    report.write_json(out / "metrics.json", metrics)
    summary = (
        f"Done in {metrics['total_seconds']:.0f} s: {result['global_step']} steps, "
        f"{metrics['tokens_per_second']} tokens/s, final loss {result['losses'][-1]['loss'] if result['losses'] else float('nan'):.4f}"
    )
    if before and after:
        summary += f", exact match {before['exact_match']:.3f} -> {after['exact_match']:.3f}"
    print(summary + f"\nOutputs in {out}/ (final/, metrics.json, loss.png, environment.json)", flush=True)
    return 0


class CountingCollator:
    """Counts the real (non-padding) tokens that go through training, for tokens/s, and digests
    them, so that ranks can show they trained on different shards."""

    def __init__(self, inner: PadCollator) -> None:
        self.inner, self.tokens = inner, 0
        self.digest = new_digest()

    def __call__(self, features: list[dict]) -> dict:
        batch = self.inner(features)
        if features and features[0].get("odin_eval"):
            return batch
        self.tokens += int(batch["attention_mask"].sum())
        self.digest.update(batch["input_ids"].numpy().tobytes())
        return batch


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit status."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return run(argv)
    except (ConfigError, CheckpointError, DataError, ModelError) as exc:
        print(f"odin-train: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeError as exc:
        if not _is_oom(exc):
            raise
        print(
            f"odin-train: error: out of memory ({str(exc).splitlines()[0]}).\n"
            "  Lower --per_device_train_batch_size (raise --gradient_accumulation_steps to keep the batch), "
            "lower --max_length, or keep --use_peft true.",
            file=sys.stderr,
        )
        return EXIT_OOM


if __name__ == "__main__":
    sys.exit(main())
