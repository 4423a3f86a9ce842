"""Records for transformers.

transformers is a lazy package: records sit on the submodule that defines the thing
(`transformers.trainer`, `transformers.training_args`, `transformers.optimization`); where users
import the name from the package top level and it left the lazy import structure, a "lazy"
record puts it back so `from transformers import X` resolves through the submodule.
"""

from __future__ import annotations

from odin_compat.records import (
    accepts,
    adapted,
    kwarg_adapter,
    lacks_kwarg,
    lazy_export,
    record,
    relocate,
    rename_kwarg,
    renaming,
    warn_once,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections import abc
    from types import ModuleType

    from odin_compat.records import Record


# --- transformers.AdamW ------------------------------------------------------------------------

_ADAMW_UPSTREAM = (
    "https://github.com/huggingface/transformers/blob/v4.49.0/src/transformers/optimization.py "
    "(removed by PR #36177); https://github.com/stanford-futuredata/ColBERT/issues/390"
)


@record(
    "transformers-adamw",
    "transformers.optimization:AdamW",
    kind="backport",
    fixes="ImportError: cannot import name 'AdamW' from 'transformers.optimization'",
    affects="transformers>=4.50.0",
    upstream=_ADAMW_UPSTREAM,
    remove_when="no supported caller imports transformers.AdamW",
    proof="test_repairs_transformers::test_adamw",
)
def _adamw(module: ModuleType, record: Record) -> type:
    from odin_compat.repairs._vendor import transformers_4_49

    return relocate(transformers_4_49.AdamW, module.__name__)  # type: ignore[return-value]


@record(
    "transformers-adamw-export",
    "transformers:AdamW",
    kind="lazy",
    fixes="ImportError: cannot import name 'AdamW' from 'transformers'",
    affects="transformers>=4.50.0",
    upstream=_ADAMW_UPSTREAM,
    remove_when="no supported caller imports transformers.AdamW",
    proof="test_repairs_transformers::test_adamw",
)
def _export_adamw(module: ModuleType, record: Record) -> None:
    lazy_export(module, "AdamW", "optimization")


# --- renamed keywords: TrainingArguments(evaluation_strategy=) and Trainer(tokenizer=), both ways ----

_EVAL_UPSTREAM = (
    "https://github.com/huggingface/transformers/pull/30190 (eval_strategy, 4.41.0); "
    "transformers v4.50.3 src/transformers/training_args.py (last with evaluation_strategy)"
)
_TOKENIZER_UPSTREAM = (
    "https://github.com/huggingface/transformers/pull/32385 (processing_class, 4.46.0); "
    "https://github.com/huggingface/transformers/pull/43733 (tokenizer removed, 5.0.0)"
)


def _renamer(
    path: str, old: str, new: str, warn: str | None = None
) -> abc.Callable[[ModuleType, Record], object]:
    """A provider that lets the callable at `path` take `old` as `new`."""

    def provide(module: ModuleType, record: Record) -> object:
        owner, _, attr = path.partition(".")
        return rename_kwarg(getattr(getattr(module, owner), attr), old, new, record.id, warn=warn)

    return provide


def _train_lacks_model_path(module: ModuleType, record: Record) -> bool:
    # transformers 4.x read `model_path` from **kwargs inside Trainer.train (the string is among its
    # code's constants); a release without that translation needs the adapter.
    func = module.Trainer.train
    code = getattr(func, "__code__", None)
    return code is not None and "model_path" not in code.co_consts and not adapted(func, record.id)


record(
    "transformers-trainer-train-model-path",
    "transformers.trainer:Trainer.train",
    kind="kwarg",
    fixes="TypeError: Trainer.train() got an unexpected keyword argument 'model_path'",
    affects="transformers>=5.0.0",
    note="(deprecated since 4.0.0; renamed resume_from_checkpoint)",
    upstream="transformers v4.57.1 src/transformers/trainer.py (Trainer.train: "
    "kwargs.pop('model_path') -> resume_from_checkpoint, with a FutureWarning)",
    remove_when="callers pass resume_from_checkpoint",
    needed=_train_lacks_model_path,
    proof=(
        "test_repairs_transformers::test_trainer_train_model_path",
        "test_repairs_transformers::test_trainer_train_model_path_untouched_on_4_57",
    ),
)(
    _renamer(
        "Trainer.train",
        "model_path",
        "resume_from_checkpoint",
        warn="`model_path` is deprecated and will be removed in a future version. Use `resume_from_checkpoint` "
        "instead (odin_compat renamed it).",
    )
)


record(
    "transformers-evaluation-strategy",
    "transformers.training_args:TrainingArguments.__init__",
    kind="kwarg",
    fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'evaluation_strategy'",
    affects="transformers>=4.51.0",
    note="(deprecated since 4.41.0)",
    upstream=_EVAL_UPSTREAM,
    remove_when="callers use eval_strategy",
    needed=renaming("TrainingArguments.__init__", "evaluation_strategy", "eval_strategy"),
    proof="test_repairs_transformers::test_evaluation_strategy",
)(
    _renamer(
        "TrainingArguments.__init__",
        "evaluation_strategy",
        "eval_strategy",
        warn="`evaluation_strategy` is deprecated and was removed in version 4.51 of 🤗 Transformers. "
        "Use `eval_strategy` instead (odin_compat renamed it).",
    )
)
record(
    "transformers-eval-strategy-old",
    "transformers.training_args:TrainingArguments.__init__",
    kind="kwarg",
    fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'eval_strategy'",
    affects="transformers<4.41.0",
    note="with code written for newer releases",
    upstream=_EVAL_UPSTREAM,
    remove_when="odin supports only transformers>=4.41",
    needed=renaming("TrainingArguments.__init__", "eval_strategy", "evaluation_strategy"),
    proof="test_repairs_transformers::test_eval_strategy",
)(_renamer("TrainingArguments.__init__", "eval_strategy", "evaluation_strategy"))
record(
    "transformers-trainer-tokenizer",
    "transformers.trainer:Trainer.__init__",
    kind="kwarg",
    fixes="TypeError: Trainer.__init__() got an unexpected keyword argument 'tokenizer'",
    affects="transformers>=5.0.0",
    note="(deprecated since 4.46.0)",
    upstream=_TOKENIZER_UPSTREAM,
    remove_when="callers pass processing_class",
    needed=renaming("Trainer.__init__", "tokenizer", "processing_class"),
    proof=(
        "test_repairs_transformers::test_trainer_tokenizer_breaks",
        "test_repairs_transformers::test_trainer_tokenizer_untouched",
    ),
)(
    _renamer(
        "Trainer.__init__",
        "tokenizer",
        "processing_class",
        warn="`tokenizer` is deprecated and removed starting from version 5.0.0 for `Trainer.__init__`. "
        "Use `processing_class` instead (odin_compat renamed it).",
    )
)
record(
    "transformers-trainer-processing-class",
    "transformers.trainer:Trainer.__init__",
    kind="kwarg",
    fixes="TypeError: Trainer.__init__() got an unexpected keyword argument 'processing_class'",
    affects="transformers<4.46.0",
    note="with code written for newer releases",
    upstream=_TOKENIZER_UPSTREAM,
    remove_when="odin supports only transformers>=4.46",
    needed=renaming("Trainer.__init__", "processing_class", "tokenizer"),
    proof=(
        "test_repairs_transformers::test_trainer_processing_class",
        "test_repairs_transformers::test_trainer_tokenizer_untouched",
    ),
)(_renamer("Trainer.__init__", "processing_class", "tokenizer"))


record(
    "transformers-seq2seq-trainer-tokenizer",
    "transformers.trainer_seq2seq:Seq2SeqTrainer.__init__",
    kind="kwarg",
    fixes="TypeError: Seq2SeqTrainer.__init__() got an unexpected keyword argument 'tokenizer'",
    affects="transformers>=5.0.0",
    note="(deprecated since 4.46.0; its own __init__, so transformers-trainer-tokenizer does not reach it)",
    upstream=_TOKENIZER_UPSTREAM + "; transformers v4.57.1 src/transformers/trainer_seq2seq.py "
    "(deprecate_kwarg('tokenizer', new_name='processing_class', raise_if_both_names=True))",
    remove_when="callers pass processing_class",
    needed=renaming("Seq2SeqTrainer.__init__", "tokenizer", "processing_class"),
    proof=(
        "test_repairs_transformers::test_seq2seq_trainer_tokenizer",
        "test_repairs_transformers::test_seq2seq_trainer_tokenizer_untouched",
    ),
)(
    _renamer(
        "Seq2SeqTrainer.__init__",
        "tokenizer",
        "processing_class",
        warn="`tokenizer` is deprecated and removed starting from version 5.0.0 for `Seq2SeqTrainer.__init__`. "
        "Use `processing_class` instead (odin_compat renamed it).",
    )
)


# --- subclass overrides called with the arguments newer Trainers pass -------------------------
#
# Trainer >= 4.46 calls `self.compute_loss(model, inputs, num_items_in_batch=...)` and
# `self.training_step(model, inputs, num_items_in_batch)`; >= 4.50 calls
# `self.get_batch_samples(epoch_iterator, num_batches, device)`. A subclass written for older
# releases overrides these with the old arity. Each record below adds one adapter to a shared
# `Trainer.__init_subclass__`, which wraps such an override when the subclass is created, so the
# new argument is dropped for that override only (upstream's own methods are never touched).

# method -> (new parameter, its positional index incl. self, the record's id)
_OVERRIDES: dict[str, tuple[str, int, str]] = {}


def _drops(func: object, param: str, index: int) -> bool:
    """True when an override cannot take `param` (by name, by position, or via *args/**kwargs)."""
    import inspect

    try:
        params = list(inspect.signature(func).parameters.values())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return False
    if any(p.name == param for p in params):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) <= index


def _wrap_override(func: object, param: str, index: int, record_id: str) -> object:
    import functools

    @functools.wraps(func)  # type: ignore[arg-type]
    def override(*args: object, **kwargs: object) -> object:
        kwargs.pop(param, None)
        if len(args) > index:
            args = args[:index] + args[index + 1 :]
        return func(*args, **kwargs)  # type: ignore[operator]

    override.__odin_record__ = record_id  # type: ignore[attr-defined]
    return override


def _init_subclass(module: ModuleType) -> object:
    Trainer = module.Trainer
    previous = vars(Trainer).get("__init_subclass__")
    if previous is not None and getattr(previous.__func__, "__odin_record__", None) is None:
        raise RuntimeError("Trainer defines its own __init_subclass__: odin leaves it alone")
    if previous is not None:
        return previous  # one shared hook; the records only add to _OVERRIDES

    def __init_subclass__(cls, **kwargs):  # noqa: ANN001, ANN202, N807
        super(Trainer, cls).__init_subclass__(**kwargs)
        for name, (param, index, record_id) in list(_OVERRIDES.items()):
            func = vars(cls).get(name)
            if func is None or adapted(func) or not callable(func) or not _drops(func, param, index):
                continue
            setattr(cls, name, _wrap_override(func, param, index, record_id))

    __init_subclass__.__odin_record__ = "transformers-override-arity"  # type: ignore[attr-defined]
    return classmethod(__init_subclass__)


# method -> the Trainer class its record last hooked: a reloaded transformers.trainer makes a new one
_HOOKED: dict[str, type] = {}


def _override(method: str, param: str, index: int) -> abc.Callable[[ModuleType, Record], object]:
    def provide(module: ModuleType, record: Record) -> object:
        hook = _init_subclass(module)
        _OVERRIDES[method] = (param, index, record.id)
        _HOOKED[method] = module.Trainer
        return hook

    return provide


def _passes(method: str, param: str) -> abc.Callable[[ModuleType, Record], bool]:
    def needed(module: ModuleType, record: Record) -> bool:
        # Upstream passes the new argument only where its own method takes it. A new Trainer
        # class (a reloaded transformers.trainer) needs the hook again.
        upstream = getattr(module.Trainer, method, None)  # get_batch_samples exists from 4.46
        return _HOOKED.get(method) is not module.Trainer and upstream is not None and accepts(upstream, param)

    return needed


record(
    "transformers-override-compute-loss",
    "transformers.trainer:Trainer.__init_subclass__",
    kind="kwarg",
    fixes="TypeError: MyTrainer.compute_loss() got an unexpected keyword argument 'num_items_in_batch'",
    affects="transformers>=4.46.0",
    note="with a Trainer subclass overriding compute_loss(model, inputs, return_outputs=False)",
    upstream="https://github.com/huggingface/transformers/issues/36331, #35838 (4.46.0 training_step)",
    remove_when="subclasses accept num_items_in_batch",
    needed=_passes("compute_loss", "num_items_in_batch"),
    proof=(
        "test_repairs_transformers::test_compute_loss",
        "test_repairs_transformers::test_overrides_untouched",
    ),
)(_override("compute_loss", "num_items_in_batch", 4))
record(
    "transformers-override-training-step",
    "transformers.trainer:Trainer.__init_subclass__",
    kind="kwarg",
    fixes="TypeError: MyTrainer.training_step() takes 3 positional arguments but 4 were given",
    affects="transformers>=4.46.0",
    note="with a Trainer subclass overriding training_step(model, inputs)",
    upstream="https://github.com/huggingface/trl/issues/2247 (transformers 4.46.0 _inner_training_loop)",
    remove_when="subclasses accept num_items_in_batch",
    needed=_passes("training_step", "num_items_in_batch"),
    proof=(
        "test_repairs_transformers::test_training_step",
        "test_repairs_transformers::test_overrides_untouched",
    ),
)(_override("training_step", "num_items_in_batch", 3))
record(
    "transformers-override-get-batch-samples",
    "transformers.trainer:Trainer.__init_subclass__",
    kind="kwarg",
    fixes="TypeError: MyTrainer.get_batch_samples() takes 3 positional arguments but 4 were given",
    affects="transformers>=4.50.0",
    note="with a Trainer subclass overriding get_batch_samples(epoch_iterator, num_batches)",
    upstream="https://github.com/OpenBMB/AgentCPM-GUI/issues/51; https://github.com/hiyouga/LLaMA-Factory/issues/8491",
    remove_when="subclasses accept device",
    needed=_passes("get_batch_samples", "device"),
    proof=(
        "test_repairs_transformers::test_get_batch_samples",
        "test_repairs_transformers::test_overrides_untouched",
    ),
)(_override("get_batch_samples", "device", 3))


# --- is_torch_tpu_available ---------------------------------------------------------------------

_TPU_UPSTREAM = (
    "https://github.com/huggingface/transformers/blob/v4.50.3/src/transformers/utils/import_utils.py "
    "(deprecated for is_torch_xla_available in 4.39, removed in 4.51.0)"
)


@record(
    "transformers-is-torch-tpu-available",
    "transformers.utils.import_utils:is_torch_tpu_available",
    kind="backport",
    fixes="ImportError: cannot import name 'is_torch_tpu_available' from 'transformers.utils.import_utils'",
    affects="transformers>=4.51.0",
    upstream=_TPU_UPSTREAM,
    remove_when="callers use is_torch_xla_available",
    proof="test_repairs_transformers::test_is_torch_tpu_available",
)
def _is_torch_tpu_available(module: ModuleType, record: Record) -> object:
    from odin_compat.repairs._vendor import transformers_4_50

    return relocate(transformers_4_50.is_torch_tpu_available, module.__name__)


@record(
    "transformers-utils-is-torch-tpu-available",
    "transformers.utils:is_torch_tpu_available",
    kind="alias",
    fixes="ImportError: cannot import name 'is_torch_tpu_available' from 'transformers.utils'",
    affects="transformers>=4.51.0",
    upstream=_TPU_UPSTREAM,
    remove_when="callers use is_torch_xla_available",
    proof="test_repairs_transformers::test_is_torch_tpu_available",
)
def _tpu_from_import_utils(module: ModuleType, record: Record) -> object:
    from transformers.utils import import_utils

    return import_utils.is_torch_tpu_available


@record(
    "transformers-is-torch-tpu-available-export",
    "transformers:is_torch_tpu_available",
    kind="lazy",
    fixes="ImportError: cannot import name 'is_torch_tpu_available' from 'transformers'",
    affects="transformers>=4.51.0",
    upstream=_TPU_UPSTREAM,
    remove_when="callers use is_torch_xla_available",
    proof="test_repairs_transformers::test_is_torch_tpu_available",
)
def _export_tpu(module: ModuleType, record: Record) -> None:
    lazy_export(module, "is_torch_tpu_available", "utils")


# --- TrainingArguments fields removed in 5.0: no_cuda, warmup_ratio, overwrite_output_dir, ... ------


def _training_args(param: str, adapt_one: abc.Callable[[dict, object], None]) -> abc.Callable[..., object]:
    """A provider that takes keyword `param` off TrainingArguments' call and hands its value to
    `adapt_one(kwargs, value)`, which sets what the release that had it would have set."""

    def provide(module: ModuleType, record: Record) -> object:
        def adapt(args: tuple, kwargs: dict) -> tuple:
            if param in kwargs:
                adapt_one(kwargs, kwargs.pop(param))
            return args, kwargs

        return kwarg_adapter(module.TrainingArguments.__init__, adapt, record.id)

    return provide


def _no_cuda(kwargs: dict, value: bool) -> None:
    # As 4.57's __post_init__: a true no_cuda sets use_cpu; a false one does nothing.
    if value:
        kwargs["use_cpu"] = True
    warn_once(
        "transformers-no-cuda",
        "using `no_cuda` is deprecated and was removed in version 5.0 of 🤗 Transformers. "
        "Use `use_cpu` instead (odin_compat translated it).",
    )


def _warmup_ratio(kwargs: dict, ratio: float) -> None:
    import math

    # transformers 4.57 (training_args.py lines 1904-1908, get_warmup_steps): ratio in [0, 1];
    # warmup_steps > 0 overrides it; steps = ceil(num_training_steps * ratio). transformers 5
    # reads a warmup_steps float below 1 as that ratio, with the same ceil.
    if ratio < 0 or ratio > 1:
        raise ValueError("warmup_ratio must lie in range [0,1]")
    if ratio > 0 and not kwargs.get("warmup_steps"):
        kwargs["warmup_steps"] = ratio if ratio < 1 else math.nextafter(1.0, 0.0)  # 1.0 would mean 1 step
    warn_once(
        "transformers-warmup-ratio",
        "`warmup_ratio` was removed in transformers 5.0: `warmup_steps` takes a float below 1 as a ratio. "
        "odin_compat passed it as warmup_steps.",
    )


def _overwrite_output_dir(kwargs: dict, value: bool) -> None:
    # Trainer never read it (transformers 4.57 trainer.py has no use): only example scripts did.
    warn_once(
        "transformers-overwrite-output-dir",
        "`overwrite_output_dir` was removed in transformers 5.0 (Trainer never used it); odin_compat dropped it.",
    )


def _group_by_length(kwargs: dict, value: bool) -> None:
    # transformers 5 replaced the flag by train_sampling_strategy="group_by_length" (same sampler).
    if value:
        if kwargs.get("train_sampling_strategy", "random") not in ("random", "group_by_length"):
            raise ValueError("group_by_length=True conflicts with the train_sampling_strategy given")
        kwargs["train_sampling_strategy"] = "group_by_length"
    warn_once(
        "transformers-group-by-length",
        "`group_by_length` was removed in transformers 5.0; odin_compat passed "
        '`train_sampling_strategy="group_by_length"` instead.',
    )


def _include_inputs_for_metrics(kwargs: dict, value: bool) -> None:
    # As 4.57's __post_init__: a true flag appends "inputs" to include_for_metrics.
    if value:
        include = list(kwargs.get("include_for_metrics") or [])
        if "inputs" not in include:
            include.append("inputs")
        kwargs["include_for_metrics"] = include
    warn_once(
        "transformers-include-inputs-for-metrics",
        "Using `include_inputs_for_metrics` is deprecated and was removed in version 5 of 🤗 Transformers. "
        "Please use `include_for_metrics` list argument instead (odin_compat translated it).",
    )


record(
    "transformers-no-cuda",
    "transformers.training_args:TrainingArguments.__init__",
    kind="kwarg",
    fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'no_cuda'",
    affects="transformers>=5.0.0",
    note="(deprecated for use_cpu since 4.34)",
    upstream="transformers v4.57.1 src/transformers/training_args.py (no_cuda -> use_cpu in __post_init__); "
    "removed in 5.0.0",
    remove_when="callers pass use_cpu",
    needed=lacks_kwarg("TrainingArguments.__init__", "no_cuda", given="use_cpu"),
    proof="test_repairs_transformers::test_no_cuda",
)(_training_args("no_cuda", _no_cuda))
record(
    "transformers-warmup-ratio",
    "transformers.training_args:TrainingArguments.__init__",
    kind="kwarg",
    fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'warmup_ratio'",
    affects="transformers>=5.0.0",
    note="(warmup_steps takes a float ratio instead)",
    upstream="transformers v4.57.1 src/transformers/training_args.py (warmup_ratio, get_warmup_steps); "
    "v5.24.0 training_args.py::get_warmup_steps",
    remove_when="callers pass warmup_steps=<ratio>",
    needed=lacks_kwarg("TrainingArguments.__init__", "warmup_ratio"),
    proof="test_repairs_transformers::test_warmup_ratio",
)(_training_args("warmup_ratio", _warmup_ratio))
record(
    "transformers-overwrite-output-dir",
    "transformers.training_args:TrainingArguments.__init__",
    kind="kwarg",
    fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'overwrite_output_dir'",
    affects="transformers>=5.0.0",
    upstream="transformers v4.57.1 src/transformers/training_args.py (field, unused by Trainer); removed in 5.0.0",
    remove_when="callers stop passing it",
    needed=lacks_kwarg("TrainingArguments.__init__", "overwrite_output_dir"),
    proof=(
        "test_repairs_transformers::test_overwrite_output_dir",
        "test_repairs_transformers::test_warmup_ratio",
    ),
)(_training_args("overwrite_output_dir", _overwrite_output_dir))
record(
    "transformers-group-by-length",
    "transformers.training_args:TrainingArguments.__init__",
    kind="kwarg",
    fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'group_by_length'",
    affects="transformers>=5.0.0",
    upstream="transformers v4.57.1 training_args.py (group_by_length); v5.24.0 training_args.py (train_sampling_strategy)",
    remove_when="callers stop passing group_by_length",
    needed=lacks_kwarg("TrainingArguments.__init__", "group_by_length"),
    proof="test_repairs_transformers::test_group_by_length",
)(_training_args("group_by_length", _group_by_length))
record(
    "transformers-include-inputs-for-metrics",
    "transformers.training_args:TrainingArguments.__init__",
    kind="kwarg",
    fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'include_inputs_for_metrics'",
    affects="transformers>=5.0.0",
    upstream="transformers v4.57.1 training_args.py lines 2158-2162 (deprecated for include_for_metrics)",
    remove_when="callers stop passing include_inputs_for_metrics",
    needed=lacks_kwarg("TrainingArguments.__init__", "include_inputs_for_metrics"),
    proof="test_repairs_transformers::test_group_by_length",
)(_training_args("include_inputs_for_metrics", _include_inputs_for_metrics))


# --- Trainer.tokenizer (the attribute) --------------------------------------------------------------


@record(
    "transformers-trainer-tokenizer-attribute",
    "transformers.trainer:Trainer.tokenizer",
    kind="backport",
    fixes="AttributeError: 'Trainer' object has no attribute 'tokenizer'",
    affects="transformers>=5.0.0",
    note="(a deprecated property since 4.46)",
    upstream="transformers v4.57.1 src/transformers/trainer.py (Trainer.tokenizer property); "
    "https://github.com/huggingface/transformers/pull/43733",
    remove_when="callers use trainer.processing_class",
    proof="test_repairs_transformers::test_trainer_tokenizer_attribute",
)
def _tokenizer_property(module: ModuleType, record: Record) -> object:
    from odin_compat.repairs._vendor import transformers_4_57

    return property(transformers_4_57.tokenizer, transformers_4_57.set_tokenizer)


# --- resume_from_checkpoint with torch >= 2.6 (weights_only=True by default) -------------------------


def _load_rng_state_needed(module: ModuleType, record: Record) -> bool:
    import torch.serialization

    return (
        "safe_globals" not in vars(module)  # transformers >= 4.47 wraps the load itself
        and hasattr(torch.serialization, "safe_globals")  # torch >= 2.6 (weights_only=True default)
        and not adapted(module.Trainer._load_rng_state, record.id)
    )


@record(
    "transformers-rng-state-weights-only",
    "transformers.trainer:Trainer._load_rng_state",
    kind="wrap",
    fixes="_pickle.UnpicklingError: Weights only load failed. ... Unsupported global: GLOBAL "
    "numpy._core.multiarray._reconstruct (Trainer.train(resume_from_checkpoint=...))",
    affects="transformers<4.47.0",
    note="with torch>=2.6",
    upstream="transformers v4.47.1 src/transformers/trainer.py::safe_globals (accelerate PR #3036); "
    "https://github.com/huggingface/transformers/issues/34631; https://github.com/huggingface/trl/issues/3247",
    remove_when="odin supports only transformers>=4.47",
    needed=_load_rng_state_needed,
    proof="test_repairs_transformers::test_rng_state",
)
def _load_rng_state(module: ModuleType, record: Record) -> object:
    import functools

    from odin_compat.repairs._vendor.transformers_4_47 import safe_globals

    func = module.Trainer._load_rng_state

    @functools.wraps(func)
    def _load_rng_state(self, checkpoint):  # noqa: ANN001, ANN202
        with safe_globals():
            return func(self, checkpoint)

    _load_rng_state.__odin_record__ = record.id  # type: ignore[attr-defined]
    return _load_rng_state


# --- removed TrainingArguments fields given as command-line flags (HfArgumentParser) ---------------------
#
# A field removed from an argument dataclass is also a removed command-line flag: HfArgumentParser rejects
# it ("Some specified arguments are not used by the HfArgumentParser"). This record translates such flags
# in the argument list before parsing, with the same meaning as the keyword records above. Other record
# modules add their flags to FLAGS (trl: SFTConfig --max_seq_length).

_BOOL = {"true": True, "false": False, "yes": True, "no": False, "t": True, "f": False, "y": True, "n": False,
         "1": True, "0": False}  # fmt: skip


def _ratio_flag(value: str, given: set[str]) -> list[str]:
    import math

    ratio = float(value)
    if ratio < 0 or ratio > 1:
        raise ValueError("warmup_ratio must lie in range [0,1]")
    if ratio == 0 or "warmup_steps" in given:
        return []  # warmup_steps > 0 overrides the ratio (transformers 4.57 get_warmup_steps)
    return ["--warmup_steps", repr(ratio if ratio < 1 else math.nextafter(1.0, 0.0))]


# old flag -> (the dataclass that dropped it, takes a value (else a bool flag), new flags from the value)
FLAGS: dict[str, tuple[str, bool, abc.Callable[[object, set[str]], list[str]]]] = {
    "evaluation_strategy": ("TrainingArguments", True, lambda v, g: ["--eval_strategy", str(v)]),
    "warmup_ratio": ("TrainingArguments", True, _ratio_flag),  # type: ignore[dict-item]
    "overwrite_output_dir": ("TrainingArguments", False, lambda v, g: []),
    "no_cuda": ("TrainingArguments", False, lambda v, g: ["--use_cpu", "True"] if v else []),
    "group_by_length": ("TrainingArguments", False,
                        lambda v, g: ["--train_sampling_strategy", "group_by_length"] if v else []),
    "include_inputs_for_metrics": ("TrainingArguments", False,
                                   lambda v, g: ["--include_for_metrics", "inputs"] if v else []),
}  # fmt: skip
# flag -> (library, first release without it), for the flags the API diff's table adds (repairs/arguments.py)
FLAG_SINCE: dict[str, tuple[str, str]] = {}
FLAG_LAST: dict[str, str] = {}  # the last release that had each of those flags
NO_REPLACEMENT: set[str] = set()  # those of them that odin_compat drops (its table names no new field)


def translate_flags(
    dataclass_types: abc.Iterable[type], args: list[str], options: abc.Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """`args` with the removed flags of FLAGS translated; and the flags translated.

    A flag is translated only when a parsed dataclass derives from the class that dropped it, no
    parsed dataclass still has a field of that name (a script's own dataclass may declare it) and the
    parser has no option of that name (`options`: a script's own `add_argument("--config")`, say).
    """
    import dataclasses

    types = list(dataclass_types)
    fields = {f.name for t in types if dataclasses.is_dataclass(t) for f in dataclasses.fields(t)}
    fields |= set(options)
    bases = {c.__name__ for t in types for c in getattr(t, "__mro__", ())}
    wanted = {k: v for k, v in FLAGS.items() if v[0] in bases and k not in fields}
    if not wanted:
        return args, []
    given = {a[2:].partition("=")[0] for a in args if a.startswith("--")}
    out: list[str] = []
    done: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        name, eq, inline = token[2:].partition("=") if token.startswith("--") else ("", "", "")
        if name and name not in wanted and name not in fields:
            # argparse took an unambiguous prefix (--max_seq_len for --max_seq_length): so do we, when the
            # prefix names no option of today's dataclasses
            matches = [k for k in wanted if k.startswith(name)]
            if len(matches) == 1 and not any(f.startswith(name) for f in fields):
                name = matches[0]
        if name not in wanted:
            out.append(token)
            i += 1
            continue
        _, takes_value, translate = wanted[name]
        if eq:
            raw: str | None = inline
        elif takes_value and i + 1 < len(args):
            raw, i = args[i + 1], i + 1
        elif not takes_value and i + 1 < len(args) and args[i + 1].lower() in _BOOL:
            raw, i = args[i + 1], i + 1
        else:
            raw = None
        value: object = raw if takes_value else (True if raw is None else _BOOL.get(raw.lower(), True))
        out.extend(translate(value, given))
        done.append(name)
        i += 1
    return out, done


def _parse_args(module: ModuleType, record: Record) -> object:
    import functools
    import sys

    func = module.HfArgumentParser.parse_args_into_dataclasses

    @functools.wraps(func)
    def parse_args_into_dataclasses(self, args=None, *rest, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if args is None and not rest and not kwargs.get("args_filename") and not kwargs.get("args_file_flag"):
            args = sys.argv[1:]
        if args is not None:
            # the parser's own options (argparse's list of them) keep their flags
            own = {
                s[2:] for a in getattr(self, "_actions", ()) for s in a.option_strings if s.startswith("--")
            }
            args, done = translate_flags(self.dataclass_types, list(args), own)
            dropped = sorted(d for d in done if d in NO_REPLACEMENT)
            translated = sorted(d for d in done if d not in NO_REPLACEMENT)
            if translated:
                warn_once(
                    "transformers-hfargparser-removed-flags:" + ",".join(translated),
                    f"The command-line flags {['--' + d for d in translated]} were removed from this release; "
                    "odin_compat translated them as the release that had them did. Use their replacements.",
                )
            if dropped:  # not translated: nothing reads them now, so say so
                warn_once(
                    "transformers-hfargparser-removed-flags:" + ",".join(dropped),
                    f"The command-line flags {['--' + d for d in dropped]} were removed from this release, "
                    + ", ".join(f"--{d} after {FLAG_SINCE[d][0]} {FLAG_LAST[d]}" for d in dropped)
                    + "; odin_compat has no translation for them and dropped them, so they have no effect "
                    "(the library's release notes say what replaced them, if anything did).",
                )
        return func(self, args, *rest, **kwargs)

    parse_args_into_dataclasses.__odin_record__ = record.id  # type: ignore[attr-defined]
    return parse_args_into_dataclasses


def _parse_args_needed(module: ModuleType, record: Record) -> bool:
    import dataclasses
    import sys

    if adapted(module.HfArgumentParser.parse_args_into_dataclasses, record.id):
        return False
    from transformers.training_args import TrainingArguments

    from odin_compat._stack import version

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}

    def gone(name: str, owner: str) -> bool:
        # a flag of the API diff's table: gone from the installed release of its library
        if name in FLAG_SINCE:
            dist, since = FLAG_SINCE[name]
            if (
                dist not in sys.modules
            ):  # trl's flags count once trl is in use (it imports transformers first)
                return False
            installed = version(dist)
            return installed is not None and _release(installed) >= _release(since)
        return name not in fields if owner == "TrainingArguments" else True

    # needed when the installed releases lack one of the removed flags
    return any(gone(name, owner) for name, (owner, _, _) in FLAGS.items())


def _release(text: str) -> tuple[int, ...]:
    """`1.16.0rc1` -> (1, 16, 0): the release numbers, enough to order the releases of the API diff."""
    import re

    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])


record(
    "transformers-hfargparser-removed-flags",
    "transformers.hf_argparser:HfArgumentParser.parse_args_into_dataclasses",
    kind="wrap",
    fixes="ValueError: Some specified arguments are not used by the HfArgumentParser: ['--warmup_ratio', ...] "
    "(also --evaluation_strategy, --overwrite_output_dir, --no_cuda, --group_by_length, "
    "--include_inputs_for_metrics; trl: --max_seq_length)",
    affects="transformers>=4.51.0",
    note="(evaluation_strategy; the other flags from 5.0.0, each as its keyword record)",
    upstream="transformers v4.57.1 src/transformers/training_args.py (the fields and their __post_init__); "
    "v5.24.0 src/transformers/hf_argparser.py",
    remove_when="callers pass the replacement flags",
    needed=_parse_args_needed,
    proof="test_repairs_transformers::test_removed_flags",
)(_parse_args)


# --- PreTrainedModel.from_pretrained(use_auth_token=..., load_in_8bit=..., ...): removed in 5.0 -------------

_FROM_PRETRAINED_OLD = (
    "use_auth_token",
    "resume_download",
    "load_in_8bit",
    "load_in_4bit",
    "use_flash_attention_2",
)


def _from_pretrained_adapt(args: tuple, kwargs: dict) -> tuple:
    import warnings

    if not any(k in kwargs for k in _FROM_PRETRAINED_OLD):
        return args, kwargs
    # As transformers 4.57.1 (modeling_utils.py, PreTrainedModel.from_pretrained) did with each keyword:
    use_auth_token = kwargs.pop("use_auth_token", None)
    if use_auth_token is not None:
        warnings.warn(
            "The `use_auth_token` argument is deprecated and was removed in v5 of Transformers. Please use `token` "
            "instead (odin_compat passed it as `token`).",
            FutureWarning,
            stacklevel=3,
        )
        if kwargs.get("token") is not None:
            raise ValueError(
                "`token` and `use_auth_token` are both specified. Please set only the argument `token`."
            )
        kwargs["token"] = use_auth_token
    kwargs.pop("resume_download", None)  # "Not used anymore" in 4.57.1
    load_in_8bit, load_in_4bit = kwargs.pop("load_in_8bit", False), kwargs.pop("load_in_4bit", False)
    if load_in_4bit or load_in_8bit:
        import inspect

        from transformers import BitsAndBytesConfig

        if kwargs.get("quantization_config") is not None:
            raise ValueError(
                "You can't pass `load_in_4bit`or `load_in_8bit` as a kwarg when passing "
                "`quantization_config` argument at the same time."
            )
        config_dict = {
            k: v for k, v in kwargs.items() if k in inspect.signature(BitsAndBytesConfig).parameters
        }
        config_dict = {**config_dict, "load_in_4bit": load_in_4bit, "load_in_8bit": load_in_8bit}
        quantization_config, kwargs = BitsAndBytesConfig.from_dict(
            config_dict=config_dict, return_unused_kwargs=True, **kwargs
        )
        kwargs["quantization_config"] = quantization_config
        warn_once(
            "transformers-from-pretrained-load-in-kbit",
            "The `load_in_4bit` and `load_in_8bit` arguments were removed in transformers 5. "
            "Please, pass a `BitsAndBytesConfig` object in `quantization_config` argument instead "
            "(odin_compat built it).",
        )
    # transformers 4.51.3 (_autoset_attn_implementation): True selects flash_attention_2; False does nothing.
    if kwargs.pop("use_flash_attention_2", False):
        chosen = kwargs.get("attn_implementation")
        if chosen not in (None, "flash_attention_2"):
            raise ValueError(
                f'Both attn_implementation="{chosen}" and `use_flash_attention_2=True` were used when loading the '
                "model, which are not compatible."
            )
        kwargs["attn_implementation"] = "flash_attention_2"
        warn_once(
            "transformers-from-pretrained-flash-attention-2",
            "The model was loaded with use_flash_attention_2=True, which was removed; odin_compat passed "
            '`attn_implementation="flash_attention_2"` instead.',
        )
    return args, kwargs


def _from_pretrained_needed(module: ModuleType, record: Record) -> bool:
    method = vars(module.PreTrainedModel).get("from_pretrained")
    func = getattr(method, "__func__", None)
    if func is None or adapted(func, record.id):
        return False
    # transformers < 5 pops these keywords itself (`kwargs.pop("use_auth_token", None)`); 5 lets
    # them through to the model's __init__. The constant in the code objects answers that without
    # reading the source (4.49+ wrap the method in restore_default_(torch_)dtype: unwrap it).
    while hasattr(func, "__wrapped__"):
        func = func.__wrapped__
    codes = [getattr(func, "__code__", None)]
    while codes:
        code = codes.pop()
        if code is None:
            continue
        if "use_auth_token" in code.co_consts:
            return False
        codes += [c for c in code.co_consts if type(c) is type(code)]
    return True


@record(
    "transformers-from-pretrained-removed-kwargs",
    "transformers.modeling_utils:PreTrainedModel.from_pretrained",
    kind="kwarg",
    fixes="TypeError: LlamaForCausalLM.__init__() got an unexpected keyword argument 'use_auth_token' "
    "(also 'load_in_8bit', 'load_in_4bit', 'resume_download', 'use_flash_attention_2'; "
    "through AutoModel*.from_pretrained too)",
    affects="transformers>=5.0.0",
    note="(use_flash_attention_2: from 4.57)",
    upstream="transformers v4.57.1 src/transformers/modeling_utils.py (PreTrainedModel.from_pretrained); "
    "v4.51.3 (_autoset_attn_implementation, use_flash_attention_2)",
    remove_when="callers pass token=, quantization_config=, attn_implementation=",
    needed=_from_pretrained_needed,
    proof="test_repairs_transformers::test_from_pretrained",
)
def _from_pretrained(module: ModuleType, record: Record) -> object:
    func = vars(module.PreTrainedModel)["from_pretrained"].__func__
    return classmethod(kwarg_adapter(func, _from_pretrained_adapt, record.id))
