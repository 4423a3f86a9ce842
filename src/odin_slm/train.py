"""Fine-tune a small causal LM with TRL's SFTTrainer: ``python -m odin_slm.train`` (or ``odin-train``).

:func:`run` is the whole recipe, split as torchtune splits its recipes (:class:`SFTRecipe`):

- ``setup``: parse defaults < YAML (``--config``) < flags, with HF/TRL names, and check them;
  read and validate the data (errors name file:line); load the model (a Hub id through the HF
  cache, a local HF folder or GGUF; default: SmolLM2-135M-Instruct, offline); score exact match
  on the eval split; add LoRA (or train all weights);
- ``train``: the chosen engine (:mod:`odin_slm.engines`: trl, loop or unsloth) trains;
- ``write_outputs``: score exact match again, then :mod:`odin_slm.report` saves the model/adapter +
  tokenizer, metrics.json, the loss plot and the environment manifest; ``--push_to_hub`` pushes last.

SIGINT/SIGTERM save a checkpoint and exit non-zero; ``--resume_from_checkpoint`` continues it.
"""

import odin_compat  # noqa: F401,I001  (first: its repairs apply as the HF stack loads)

import logging
import signal
import sys
import math
import time
from pathlib import Path
from typing import Any

from odin_slm import fast, preflight, report
from odin_slm.checkpoints import CheckpointError, check_resume_fits, resolve_resume
from odin_slm.config import ConfigError, parse_args, set_at
from odin_slm.data import (
    CHAT_FORMATS,
    CountingCollator,
    DataError,
    PadCollator,
    load_splits,
    pad_multiple,
    tokenize,
)
from odin_slm.distributed import (
    launcher_rank,
    leave_process_group,
    process_group_exists,
    sum_over_ranks,
    weights_digest,
    world_size,
)
from odin_slm.engines import Engine, TrainJob, TrainResult, get_engine
from odin_slm.model import ModelError, check_quantization

log = logging.getLogger("odin_slm")

EXIT_BAD_INPUT = 2
EXIT_OOM = 3
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted:
    """Set by SIGINT/SIGTERM; the engines check it after each optimizer step, save and stop."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self.then = "saving a checkpoint after this step"  # what the run does before it stops

    def install(self) -> None:
        for sig in SIGNAL_EXIT:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum
        log.warning("Got %s: %s (signal again to abort).", signal.Signals(signum).name, self.then)
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


def import_early(argv: list[str]) -> None:
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


def check_options(script: Any, model_args: Any, args: Any, engine: Engine) -> bool:
    """Refuse option combinations that would be ignored, before anything loads; True when evaluating."""
    engine.check(script, model_args, args)
    template = getattr(args, "chat_template_path", None)
    if template and not (template.endswith((".jinja", ".j2")) and Path(template).is_file()):
        # A tokenizer path would make SFTTrainer add tokens and resize the model after odin tokenized.
        raise ConfigError(
            f"--chat_template_path {template}: odin-train takes an existing .jinja or .j2 file."
        )
    if script.merge_lora and not model_args.use_peft:
        raise ConfigError("--merge_lora merges a LoRA adapter: it needs --use_peft.")
    check_quantization(model_args)  # --load_in_4bit: CUDA, bitsandbytes and --use_peft
    preflight.check_hub(args)  # --push_to_hub: not offline
    preflight.check_reporting(args)  # --report_to: known integrations, installed
    return preflight.check_evaluation(args)  # --eval_strategy, --eval_on_start, --save_strategy best


def _enum_value(option: Any) -> Any:
    return getattr(option, "value", option)  # enum options print as their value


class SFTRecipe:
    """The recipe in three parts: :meth:`setup`, :meth:`train`, :meth:`write_outputs`."""

    def __init__(self, argv: list[str], callbacks: list[Any] | None = None) -> None:
        self.argv, self.callbacks = argv, list(callbacks or [])
        self.started = time.perf_counter()
        self.stop = Interrupted()

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        """Arguments and checks, data, model, the metric before training, then LoRA."""
        self._arguments()
        self._data()
        self._warm_compiler()
        self._model()
        self._adapter()

    def _arguments(self) -> None:
        self.script, self.model_args, self.args, self.provenance = parse_args(self.argv)
        self.engine = get_engine(choose_engine(self.script.engine))
        preflight.check_numbers(self.script, self.args, self.model_args)
        preflight.check_writable(self.args.output_dir)
        self.evaluating = check_options(self.script, self.model_args, self.args, self.engine)
        self.resume = resolve_resume(self.args.resume_from_checkpoint, self.args.output_dir)
        check_resume_fits(self.resume, self.engine.name, self.model_args.use_peft, self.model_args.lora_r)
        self.stale = preflight.check_reuse(self.args.output_dir, self.resume, self.args.overwrite_output_dir)
        self.out = Path(self.args.output_dir)
        from transformers import set_seed

        set_seed(self.args.seed)

    def _data(self) -> None:
        """Read and validate everything before the (slow) model load."""
        script, args = self.script, self.args
        try:
            self.splits = splits = load_splits(
                script.dataset_name,
                script.eval_dataset_name,
                script.eval_samples,
                args.seed,
                config=script.dataset_config,
                train_split=script.dataset_train_split,
                test_split=script.dataset_test_split,
                revision=script.dataset_revision,
            )
        except DataError as exc:
            self._say_where_set(exc, "dataset_name", "eval_dataset_name")
            raise
        if getattr(args, "assistant_only_loss", False) and splits.fmt not in CHAT_FORMATS:
            raise ConfigError(
                f"--assistant_only_loss needs chat 'messages' rows; {splits.source} has {splits.fmt!r} rows."
            )
        if self.evaluating and not splits.eval:
            flag = "--eval_strategy" if _enum_value(args.eval_strategy) != "no" else "--eval_on_start"
            raise ConfigError(
                f"{flag} needs eval rows: pass --eval_dataset_name, or a dataset "
                "with a test split, and keep --eval_samples above 0."
            )
        log.info(
            "Data: %d train / %d eval rows (%s) from %s",
            len(splits.train),
            len(splits.eval),
            splits.fmt,
            splits.source,
        )

    def _say_where_set(self, exc: Exception, *keys: str) -> None:
        """Add to ``exc`` the config file's line that chose the value it names: the user may not know a
        config file chose it (a packaged config, say)."""
        named = []
        for key in keys:
            where, value = set_at(self.provenance, key), self.provenance["yaml"].get(key)
            if where and isinstance(value, str) and value:
                spelled = {value, str(Path(value).expanduser())}  # messages name the path as read
                length = max((len(v) for v in spelled if v in str(exc)), default=0)
                if length:
                    named.append((length, key, where))
        if named:  # the longest value named: `chat.jsonl` is also in `eval/chat.jsonl`
            _, key, where = max(named)
            exc.args = (f"{exc}\n  ({key} is set at {where})",)

    def _fast_levers(self, rows: int) -> bool:
        return fast.wanted(
            self.script.odin_fast,
            engine=self.engine.name,
            cuda=fast._cuda(),
            steps=self._planned_steps(rows),
        )

    def _warm_compiler(self) -> None:
        """Where the fast path will compile, start the compiler's workers now: they come up while the model loads."""
        m = self.model_args
        quantized = bool(getattr(m, "load_in_4bit", False) or getattr(m, "load_in_8bit", False))
        if fast.warms_compile_workers(self.args, quantized=quantized) and self._fast_levers(
            len(self.splits.train)
        ):
            try:
                fast.warm_compile_workers()
            except Exception as exc:  # the first compile starts them anyway
                log.warning("could not start the compile workers early: %s: %s", type(exc).__name__, exc)

    def _model(self) -> None:
        """Load the model, tokenize the rows, score exact match before training (rank 0)."""
        args, splits, engine = self.args, self.splits, self.engine
        try:
            self.model, self.tokenizer, self.model_path = engine.load(self.model_args, args)
        except ModelError as exc:
            self._say_where_set(exc, "model_name_or_path")
            raise
        if getattr(
            args, "chat_template_path", None
        ):  # before tokenizing; SFTTrainer sets the same text again
            self.tokenizer.chat_template = Path(args.chat_template_path).read_text(encoding="utf-8")
        self.train_rows = engine.rows(tokenize(splits.train, splits.fmt, self.tokenizer, args.max_length))
        # Marked so that the counting collator leaves eval batches out of the training tokens.
        self.eval_rows = (
            engine.rows(
                [
                    {**r, "odin_eval": 1}
                    for r in tokenize(splits.eval, splits.fmt, self.tokenizer, args.max_length)
                ]
            )
            if self.evaluating
            else None
        )
        self.collator = CountingCollator(
            PadCollator(self.tokenizer.pad_token_id, pad_multiple(args), args.max_length)
        )
        # Under torchrun / accelerate launch every rank trains; only rank 0 scores and writes outputs.
        # (args.device sets up the process group, as Trainer would; before it every rank says 0.)
        _ = args.device
        self.main_process = args.process_index == 0 and launcher_rank() == 0
        log.info(
            "Rank %d of %d, odin_compat %s",
            args.process_index,
            args.world_size,
            "active" if odin_compat.active() else "inactive",
        )
        self.before = self._exact_match(self.model, "before")

    def _exact_match(self, model: Any, when: str) -> dict | None:
        from odin_slm.evaluate import exact_match

        rows = self.splits.eval if self.main_process else []
        score = exact_match(
            model,
            self.tokenizer,
            rows,
            self.splits.fmt,
            self.script.eval_max_new_tokens,
            unsloth=self.engine.unsloth,
        )
        if score:
            log.info(
                "Exact match %s training: %.3f (%d/%d)",
                when,
                score["exact_match"],
                score["correct"],
                score["n"],
            )
        return score

    def _adapter(self) -> None:
        self.model = self.engine.add_lora(self.model, self.model_args, self.args)
        self.trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        log.info(
            "Engine %s, %s, %d trainable parameters",
            self.engine.name,
            "LoRA" if self.model_args.use_peft else "full fine-tune",
            self.trainable,
        )

    # ------------------------------------------------------------------ train

    def _planned_steps(self, rows: int) -> int:
        """The optimizer steps this run will take (``max_steps``, else the epochs over ``rows`` train rows)."""
        args = self.args
        if args.max_steps and args.max_steps > 0:
            return int(args.max_steps)
        per_step = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * max(args.world_size, 1)
        )
        return int(math.ceil(rows / per_step) * args.num_train_epochs)

    def train(self) -> TrainResult:
        """Train with the engine; SIGINT/SIGTERM save a checkpoint and stop after the current step.

        The signal handlers stay installed until :func:`run` ends: a signal that arrives after the
        last step waits for :meth:`write_outputs`, so that the trained model is never lost.
        """

        if self.main_process:  # a metrics.json from an earlier run would claim this one succeeded
            preflight.clear_previous_run(self.stale)  # --overwrite_output_dir
            (self.out / "metrics.json").unlink(missing_ok=True)
        job = TrainJob(
            model=self.model,
            tokenizer=self.tokenizer,
            train_rows=self.train_rows,
            eval_rows=self.eval_rows,
            collator=self.collator,
            args=self.args,
            stop=self.stop,
            resume=self.resume,
            callbacks=self.callbacks,
            lora=self.model_args.use_peft,
            fast_levers=self._fast_levers(len(self.train_rows)),
        )
        self.stop.install()
        t0 = time.perf_counter()
        result = self.engine.train(job)
        self.train_seconds = time.perf_counter() - t0
        return result

    def interrupted(self, result: TrainResult) -> int:
        checkpoints_written(result)
        log.error(
            "Interrupted at step %d; checkpoint saved in %s. Resume with: "
            "--resume_from_checkpoint latest --output_dir %s",
            result.global_step,
            self.out,
            self.out,
        )
        return SIGNAL_EXIT.get(self.stop.signum, 1)

    # ------------------------------------------------------------------ outputs

    def write_outputs(self, result: TrainResult) -> int:
        """Score exact match after training and write the outputs (rank 0); push to the Hub when asked.

        A signal that arrived after the last step (during the Trainer's last evaluation or clean-up),
        or arrives now, no longer stops the run before its outputs exist: they are written (without
        the exact match after training, when the signal came first), the push is skipped, and the
        run exits with the signal's status.
        """
        args, collator = self.args, self.collator
        self.stop.then = "writing the outputs first"
        if self.stop:
            log.warning(
                "Got %s after the last training step: writing the outputs in %s before stopping.",
                signal.Signals(self.stop.signum).name,
                self.out,
            )
        tokens = sum_over_ranks(collator.tokens) if args.world_size > 1 else collator.tokens
        if args.world_size == 1 and world_size() > 1:
            log.warning(
                "Launched as %d processes, but training ran without data parallelism (engine %s): "
                "every rank trained alone on all the data; rank 0's result is kept. Use --engine trl for multi-GPU.",
                world_size(),
                self.engine.name,
            )
        sharded = result.full_state_dict is not None
        if args.world_size > 1:  # evidence of data parallelism: different shards, same weights
            log.info(
                "Rank %d: trained on %d tokens (data digest %s), weights digest %s",
                args.process_index,
                collator.tokens,
                collator.digest.hexdigest(),
                "(sharded by FSDP)" if sharded else weights_digest(result.model),
            )
        metrics = None
        if self.main_process:
            if sharded:
                from odin_slm.model import model_from_state_dict

                result.model = model_from_state_dict(
                    self.model_args, result.full_state_dict, args.device, args
                )
            record = report.RunRecord(
                out=self.out,
                engine=self.engine.name,
                model_path=self.model_path,
                lora=self.model_args.use_peft,
                trainable=self.trainable,
                dataset=self.splits.source,
                fmt=self.splits.fmt,
                train_rows=len(self.splits.train),
                eval_rows=len(self.splits.eval),
                resumed_from=self.resume,
                world_size=args.world_size,
                train_tokens=tokens,
                train_seconds=self.train_seconds,
                started=self.started,
                provenance=self.provenance,
                eval_before=self.before,
                eval_after=None if self.stop else self._exact_match(result.model, "after"),
                extra={"packing": bool(getattr(args, "packing", False)), "fast_levers": result.fast},
            )
            checkpoints_written(result)  # written while the exact match above ran
            metrics = report.write_outputs(record, result, self.tokenizer, self.script.merge_lora)
        checkpoints_written(result)
        pushing = getattr(args, "push_to_hub", False)
        if pushing and self.stop:
            log.warning(
                "Not pushed to the Hub after the signal; upload later with: hf upload <repo> %s",
                self.out / "final",
            )
        elif pushing:  # last: the outputs above are safe whatever the Hub says
            self._push(result)
        if metrics is not None:
            print(report.summary(metrics, self.out), flush=True)
        if self.stop:
            log.error(
                "Stopped by %s after training finished; the outputs are complete in %s.",
                signal.Signals(self.stop.signum).name,
                self.out,
            )
            return SIGNAL_EXIT.get(self.stop.signum, 1)
        return 0

    def _push(self, result: TrainResult) -> None:
        from odin_slm.engines.trl import push

        try:
            where = push(result)
        except Exception as exc:
            raise HubPushError(
                f"push to the Hub failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}).\n"
                f"  The run's outputs are in {self.out}/; upload them with: hf upload <repo> {self.out / 'final'}"
            ) from exc
        log.info("Pushed to the Hub: %s", where)


class HubPushError(Exception):
    """Training finished and its outputs are written, but the upload to the Hub failed."""


def checkpoints_written(result: TrainResult) -> None:
    """Wait for the checkpoints the trainer writes in the background (the ``async_save`` lever); a failed
    write raises here, before the run reports success."""
    wait = getattr(result.trainer, "wait_for_checkpoints", None)
    if callable(wait):
        wait()


def run(argv: list[str], callbacks: list[Any] | None = None) -> int:
    """The whole recipe; ``callbacks`` (transformers TrainerCallbacks) see every optimizer step."""
    import_early(argv)
    recipe = SFTRecipe(argv, callbacks)
    owns_group = not process_group_exists()  # a caller's own process group is the caller's to destroy
    recipe.setup()
    try:
        result = recipe.train()
        if result.interrupted:  # stopped early by SIGINT/SIGTERM, with a checkpoint of that step
            status = recipe.interrupted(result)
        else:
            status = recipe.write_outputs(result)  # a later signal waits for the outputs
    finally:
        recipe.stop.restore()
    if owns_group:  # not after an exception: the other ranks may still wait in a collective
        leave_process_group()
    return status


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def main(argv: list[str] | None = None, callbacks: list[Any] | None = None) -> int:
    """Console entry point; returns the process exit status. ``callbacks``: see :func:`run`."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return run(argv, callbacks)
    except HubPushError as exc:
        print(f"odin-train: error: {exc}", file=sys.stderr)
        return 1
    except (
        KeyboardInterrupt
    ):  # Ctrl-C where training's own handler is not installed (set-up, a second signal)
        print(
            "odin-train: interrupted. Complete checkpoints already in --output_dir are kept "
            "(--resume_from_checkpoint latest continues from the newest).",
            file=sys.stderr,
        )
        return SIGNAL_EXIT[signal.SIGINT]
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
