"""Records for transformers.

transformers is a lazy package: records sit on the submodule that defines the thing
(`transformers.trainer`, `transformers.training_args`, `transformers.optimization`); where users
import the name from the package top level and it left the lazy import structure, a "lazy"
record puts it back so `from transformers import X` resolves through the submodule.
"""

from __future__ import annotations

from odin_compat._records import REGISTRY, Record, accepts, adapted, lazy_export, rename_kwarg, renaming

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections import abc  # annotations only (AdamW below imports Callable itself)
    from types import ModuleType


# --- transformers.AdamW ------------------------------------------------------------------------


def _adamw(module: ModuleType) -> type:
    import math
    import warnings
    from collections.abc import Callable, Iterable

    import torch
    from torch import nn
    from torch.optim import Optimizer
    from transformers.utils.versions import require_version

    # Faithful copy of transformers 4.49.0's class (src/transformers/optimization.py), with its
    # own defaults (eps=1e-6, weight_decay=0.0, correct_bias=True): not torch.optim.AdamW's.
    class AdamW(Optimizer):
        """
        Implements Adam algorithm with weight decay fix as introduced in [Decoupled Weight Decay
        Regularization](https://arxiv.org/abs/1711.05101).

        Parameters:
            params (`Iterable[nn.parameter.Parameter]`):
                Iterable of parameters to optimize or dictionaries defining parameter groups.
            lr (`float`, *optional*, defaults to 0.001):
                The learning rate to use.
            betas (`Tuple[float,float]`, *optional*, defaults to `(0.9, 0.999)`):
                Adam's betas parameters (b1, b2).
            eps (`float`, *optional*, defaults to 1e-06):
                Adam's epsilon for numerical stability.
            weight_decay (`float`, *optional*, defaults to 0.0):
                Decoupled weight decay to apply.
            correct_bias (`bool`, *optional*, defaults to `True`):
                Whether or not to correct bias in Adam (for instance, in Bert TF repository they use `False`).
            no_deprecation_warning (`bool`, *optional*, defaults to `False`):
                A flag used to disable the deprecation warning (set to `True` to disable the warning).
        """

        def __init__(
            self,
            params: Iterable[nn.parameter.Parameter],
            lr: float = 1e-3,
            betas: tuple[float, float] = (0.9, 0.999),
            eps: float = 1e-6,
            weight_decay: float = 0.0,
            correct_bias: bool = True,
            no_deprecation_warning: bool = False,
        ):
            if not no_deprecation_warning:
                warnings.warn(
                    "This implementation of AdamW is deprecated and will be removed in a future version. Use the PyTorch"
                    " implementation torch.optim.AdamW instead, or set `no_deprecation_warning=True` to disable this"
                    " warning",
                    FutureWarning,
                    stacklevel=2,
                )
            require_version("torch>=1.5.0")  # add_ with alpha
            if lr < 0.0:
                raise ValueError(f"Invalid learning rate: {lr} - should be >= 0.0")
            if not 0.0 <= betas[0] < 1.0:
                raise ValueError(f"Invalid beta parameter: {betas[0]} - should be in [0.0, 1.0)")
            if not 0.0 <= betas[1] < 1.0:
                raise ValueError(f"Invalid beta parameter: {betas[1]} - should be in [0.0, 1.0)")
            if not 0.0 <= eps:
                raise ValueError(f"Invalid epsilon value: {eps} - should be >= 0.0")
            defaults = {
                "lr": lr,
                "betas": betas,
                "eps": eps,
                "weight_decay": weight_decay,
                "correct_bias": correct_bias,
            }
            super().__init__(params, defaults)

        @torch.no_grad()
        def step(self, closure: Callable = None):
            """
            Performs a single optimization step.

            Arguments:
                closure (`Callable`, *optional*): A closure that reevaluates the model and returns the loss.
            """
            loss = None
            if closure is not None:
                loss = closure()

            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad
                    if grad.is_sparse:
                        raise RuntimeError(
                            "Adam does not support sparse gradients, please consider SparseAdam instead"
                        )

                    state = self.state[p]

                    # State initialization
                    if len(state) == 0:
                        state["step"] = 0
                        # Exponential moving average of gradient values
                        state["exp_avg"] = torch.zeros_like(p)
                        # Exponential moving average of squared gradient values
                        state["exp_avg_sq"] = torch.zeros_like(p)

                    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                    beta1, beta2 = group["betas"]

                    state["step"] += 1

                    # Decay the first and second moment running average coefficient
                    # In-place operations to update the averages at the same time
                    exp_avg.mul_(beta1).add_(grad, alpha=(1.0 - beta1))
                    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                    denom = exp_avg_sq.sqrt().add_(group["eps"])

                    step_size = group["lr"]
                    if group["correct_bias"]:  # No bias correction for Bert
                        bias_correction1 = 1.0 - beta1 ** state["step"]
                        bias_correction2 = 1.0 - beta2 ** state["step"]
                        step_size = step_size * math.sqrt(bias_correction2) / bias_correction1

                    p.addcdiv_(exp_avg, denom, value=-step_size)

                    # Just adding the square of the weights to the loss function is *not*
                    # the correct way of using L2 regularization/weight decay with Adam,
                    # since that will interact with the m and v parameters in strange ways.
                    #
                    # Instead we want to decay the weights in a manner that doesn't interact
                    # with the m/v parameters. This is equivalent to adding the square
                    # of the weights to the loss with plain (non-momentum) SGD.
                    # Add weight decay at the end (fixed version)
                    if group["weight_decay"] > 0.0:
                        p.add_(p, alpha=(-group["lr"] * group["weight_decay"]))

            return loss

    AdamW.__module__ = module.__name__
    AdamW.__qualname__ = "AdamW"
    return AdamW


_ADAMW_UPSTREAM = (
    "https://github.com/huggingface/transformers/blob/v4.49.0/src/transformers/optimization.py "
    "(removed by PR #36177); https://github.com/stanford-futuredata/ColBERT/issues/390"
)

REGISTRY.add(
    Record(
        id="transformers-adamw",
        affects="transformers>=4.50.0",
        module="transformers.optimization",
        name="AdamW",
        kind="backport",
        fixes="ImportError: cannot import name 'AdamW' from 'transformers.optimization'",
        works="transformers<4.50.0",
        breaks="transformers>=4.50.0",
        upstream=_ADAMW_UPSTREAM,
        remove_when="no supported caller imports transformers.AdamW",
        provide=_adamw,
    )
)


def _export_adamw(module: ModuleType) -> None:
    lazy_export(module, "AdamW", "optimization")


REGISTRY.add(
    Record(
        id="transformers-adamw-export",
        affects="transformers>=4.50.0",
        module="transformers",
        name="AdamW",
        kind="lazy",
        fixes="ImportError: cannot import name 'AdamW' from 'transformers'",
        works="transformers<4.50.0",
        breaks="transformers>=4.50.0",
        upstream=_ADAMW_UPSTREAM,
        remove_when="no supported caller imports transformers.AdamW",
        provide=_export_adamw,
    )
)


# --- TrainingArguments(evaluation_strategy=...) <-> eval_strategy -------------------------------

_EVAL_UPSTREAM = (
    "https://github.com/huggingface/transformers/pull/30190 (eval_strategy, 4.41.0); "
    "transformers v4.50.3 src/transformers/training_args.py (last with evaluation_strategy)"
)


def _eval_strategy(module: ModuleType) -> object:
    return rename_kwarg(
        module.TrainingArguments.__init__,
        "evaluation_strategy",
        "eval_strategy",
        "transformers-evaluation-strategy",
        warn="`evaluation_strategy` is deprecated and was removed in version 4.51 of 🤗 Transformers. "
        "Use `eval_strategy` instead (odin_compat renamed it).",
    )


REGISTRY.add(
    Record(
        id="transformers-evaluation-strategy",
        affects="transformers>=4.51.0",
        module="transformers.training_args",
        name="TrainingArguments.__init__",
        kind="kwarg",
        fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'evaluation_strategy'",
        works="transformers<4.51.0 (deprecated since 4.41.0)",
        breaks="transformers>=4.51.0",
        upstream=_EVAL_UPSTREAM,
        remove_when="callers use eval_strategy",
        provide=_eval_strategy,
        needed=renaming("TrainingArguments.__init__", "evaluation_strategy", "eval_strategy"),
    )
)


def _eval_strategy_new(module: ModuleType) -> object:
    return rename_kwarg(
        module.TrainingArguments.__init__,
        "eval_strategy",
        "evaluation_strategy",
        "transformers-eval-strategy-old",
    )


REGISTRY.add(
    Record(
        id="transformers-eval-strategy-old",
        affects="transformers<4.41.0",
        module="transformers.training_args",
        name="TrainingArguments.__init__",
        kind="kwarg",
        fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'eval_strategy'",
        works="transformers>=4.41.0",
        breaks="transformers<4.41.0 with code written for newer releases",
        upstream=_EVAL_UPSTREAM,
        remove_when="odin supports only transformers>=4.41",
        provide=_eval_strategy_new,
        needed=renaming("TrainingArguments.__init__", "eval_strategy", "evaluation_strategy"),
    )
)


# --- Trainer(tokenizer=...) <-> processing_class -----------------------------------------------

_TOKENIZER_UPSTREAM = (
    "https://github.com/huggingface/transformers/pull/32385 (processing_class, 4.46.0); "
    "https://github.com/huggingface/transformers/pull/43733 (tokenizer removed, 5.0.0)"
)


def _trainer_tokenizer(module: ModuleType) -> object:
    return rename_kwarg(
        module.Trainer.__init__,
        "tokenizer",
        "processing_class",
        "transformers-trainer-tokenizer",
        warn="`tokenizer` is deprecated and removed starting from version 5.0.0 for `Trainer.__init__`. "
        "Use `processing_class` instead (odin_compat renamed it).",
    )


REGISTRY.add(
    Record(
        id="transformers-trainer-tokenizer",
        affects="transformers>=5.0.0",
        module="transformers.trainer",
        name="Trainer.__init__",
        kind="kwarg",
        fixes="TypeError: Trainer.__init__() got an unexpected keyword argument 'tokenizer'",
        works="transformers<5.0.0 (deprecated since 4.46.0)",
        breaks="transformers>=5.0.0",
        upstream=_TOKENIZER_UPSTREAM,
        remove_when="callers pass processing_class",
        provide=_trainer_tokenizer,
        needed=renaming("Trainer.__init__", "tokenizer", "processing_class"),
    )
)


def _trainer_processing_class(module: ModuleType) -> object:
    return rename_kwarg(
        module.Trainer.__init__, "processing_class", "tokenizer", "transformers-trainer-processing-class"
    )


REGISTRY.add(
    Record(
        id="transformers-trainer-processing-class",
        affects="transformers<4.46.0",
        module="transformers.trainer",
        name="Trainer.__init__",
        kind="kwarg",
        fixes="TypeError: Trainer.__init__() got an unexpected keyword argument 'processing_class'",
        works="transformers>=4.46.0",
        breaks="transformers<4.46.0 with code written for newer releases",
        upstream=_TOKENIZER_UPSTREAM,
        remove_when="odin supports only transformers>=4.46",
        provide=_trainer_processing_class,
        needed=renaming("Trainer.__init__", "processing_class", "tokenizer"),
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

_OVERRIDES: dict[str, tuple[str, int]] = {}  # method -> (new parameter, its positional index incl. self)


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
        for name, (param, index) in list(_OVERRIDES.items()):
            func = vars(cls).get(name)
            if func is None or adapted(func) or not callable(func) or not _drops(func, param, index):
                continue
            setattr(cls, name, _wrap_override(func, param, index, f"transformers-override-{name}"))

    __init_subclass__.__odin_record__ = "transformers-override-arity"  # type: ignore[attr-defined]
    return classmethod(__init_subclass__)


def _override_record(method: str, param: str, index: int, affects: str, **fields: str) -> None:
    record_id = f"transformers-override-{method.replace('_', '-')}"
    hooked: list[type] = []  # the Trainer class this record last hooked

    def provide(module: ModuleType) -> object:
        hook = _init_subclass(module)
        _OVERRIDES[method] = (param, index)
        hooked[:] = [module.Trainer]
        return hook

    def needed(module: ModuleType) -> bool:
        # Upstream passes the new argument only where its own method takes it. A new Trainer
        # class (a reloaded transformers.trainer) needs the hook again.
        upstream = getattr(module.Trainer, method, None)  # get_batch_samples exists from 4.46
        return module.Trainer not in hooked and upstream is not None and accepts(upstream, param)

    REGISTRY.add(
        Record(
            id=record_id,
            affects=affects,
            module="transformers.trainer",
            name="Trainer.__init_subclass__",
            kind="kwarg",
            provide=provide,
            needed=needed,
            remove_when=f"subclasses accept {param}",
            **fields,  # type: ignore[arg-type]
        )
    )


_override_record(
    "compute_loss",
    "num_items_in_batch",
    4,
    "transformers>=4.46.0",
    fixes="TypeError: MyTrainer.compute_loss() got an unexpected keyword argument 'num_items_in_batch'",
    works="transformers<4.46.0",
    breaks="transformers>=4.46.0 with a Trainer subclass overriding compute_loss(model, inputs, return_outputs=False)",
    upstream="https://github.com/huggingface/transformers/issues/36331, #35838 (4.46.0 training_step)",
)
_override_record(
    "training_step",
    "num_items_in_batch",
    3,
    "transformers>=4.46.0",
    fixes="TypeError: MyTrainer.training_step() takes 3 positional arguments but 4 were given",
    works="transformers<4.46.0",
    breaks="transformers>=4.46.0 with a Trainer subclass overriding training_step(model, inputs)",
    upstream="https://github.com/huggingface/trl/issues/2247 (transformers 4.46.0 _inner_training_loop)",
)
_override_record(
    "get_batch_samples",
    "device",
    3,
    "transformers>=4.50.0",
    fixes="TypeError: MyTrainer.get_batch_samples() takes 3 positional arguments but 4 were given",
    works="transformers<4.50.0",
    breaks="transformers>=4.50.0 with a Trainer subclass overriding get_batch_samples(epoch_iterator, num_batches)",
    upstream="https://github.com/OpenBMB/AgentCPM-GUI/issues/51; https://github.com/hiyouga/LLaMA-Factory/issues/8491",
)


# --- is_torch_tpu_available ---------------------------------------------------------------------


def _is_torch_tpu_available(module: ModuleType) -> object:
    import functools
    import importlib.util

    from odin_compat._records import warn_once

    imports = module

    # Faithful copy of transformers 4.50.3's function (src/transformers/utils/import_utils.py); it
    # warned on every call, odin warns once.
    @functools.lru_cache
    def is_torch_tpu_available(check_device=True):  # noqa: ANN001, ANN202
        "Checks if `torch_xla` is installed and potentially if a TPU is in the environment"
        warn_once(
            "transformers-is-torch-tpu-available",
            "`is_torch_tpu_available` is deprecated and will be removed in 4.41.0. "
            "Please use the `is_torch_xla_available` instead.",
        )

        if not imports._torch_available:
            return False
        if importlib.util.find_spec("torch_xla") is not None:
            if check_device:
                # We need to check if `xla_device` can be found, will raise a RuntimeError if not
                try:
                    import torch_xla.core.xla_model as xm

                    _ = xm.xla_device()
                    return True
                except RuntimeError:
                    return False
            return True
        return False

    is_torch_tpu_available.__module__ = module.__name__
    return is_torch_tpu_available


def _tpu_from_import_utils(module: ModuleType) -> object:
    from transformers.utils import import_utils

    return import_utils.is_torch_tpu_available


def _export_tpu(module: ModuleType) -> None:
    lazy_export(module, "is_torch_tpu_available", "utils")


_TPU = "is_torch_tpu_available"
_TPU_UPSTREAM = (
    "https://github.com/huggingface/transformers/blob/v4.50.3/src/transformers/utils/import_utils.py "
    "(deprecated for is_torch_xla_available in 4.39, removed in 4.51.0)"
)
for _id, _module, _kind, _provide in (
    (
        "transformers-is-torch-tpu-available",
        "transformers.utils.import_utils",
        "backport",
        _is_torch_tpu_available,
    ),
    ("transformers-utils-is-torch-tpu-available", "transformers.utils", "alias", _tpu_from_import_utils),
    ("transformers-is-torch-tpu-available-export", "transformers", "lazy", _export_tpu),
):
    REGISTRY.add(
        Record(
            id=_id,
            affects="transformers>=4.51.0",
            module=_module,
            name=_TPU,
            kind=_kind,
            fixes=f"ImportError: cannot import name 'is_torch_tpu_available' from '{_module}'",
            works="transformers<4.51.0",
            breaks="transformers>=4.51.0",
            upstream=_TPU_UPSTREAM,
            remove_when="callers use is_torch_xla_available",
            provide=_provide,
        )
    )


# --- TrainingArguments(no_cuda=...) -> use_cpu ----------------------------------------------------


def _no_cuda(module: ModuleType) -> object:
    from odin_compat._records import kwarg_adapter, warn_once

    def adapt(args: tuple, kwargs: dict) -> tuple:
        if "no_cuda" in kwargs:
            # As 4.57's __post_init__: a true no_cuda sets use_cpu; a false one does nothing.
            if kwargs.pop("no_cuda"):
                kwargs["use_cpu"] = True
            warn_once(
                "transformers-no-cuda",
                "using `no_cuda` is deprecated and was removed in version 5.0 of 🤗 Transformers. "
                "Use `use_cpu` instead (odin_compat translated it).",
            )
        return args, kwargs

    return kwarg_adapter(module.TrainingArguments.__init__, adapt, "transformers-no-cuda")


def _no_cuda_needed(module: ModuleType) -> bool:
    func = module.TrainingArguments.__init__
    return (
        not adapted(func, "transformers-no-cuda")
        and accepts(func, "use_cpu")
        and not accepts(func, "no_cuda")
    )


REGISTRY.add(
    Record(
        id="transformers-no-cuda",
        affects="transformers>=5.0.0",
        module="transformers.training_args",
        name="TrainingArguments.__init__",
        kind="kwarg",
        fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'no_cuda'",
        works="transformers<5.0.0 (deprecated for use_cpu since 4.34)",
        breaks="transformers>=5.0.0",
        upstream="transformers v4.57.1 src/transformers/training_args.py (no_cuda -> use_cpu in __post_init__); "
        "removed in 5.0.0",
        remove_when="callers pass use_cpu",
        provide=_no_cuda,
        needed=_no_cuda_needed,
    )
)


# --- Trainer.tokenizer (the attribute) --------------------------------------------------------------


def _tokenizer_property(module: ModuleType) -> object:
    from transformers.utils import logging

    logger = logging.get_logger(module.__name__)

    # Faithful copy of transformers 4.57.1's property (src/transformers/trainer.py); its
    # warnings are issued once (warning_once) rather than on every access.
    def tokenizer(self):  # noqa: ANN001, ANN202
        logger.warning_once(
            "Trainer.tokenizer is now deprecated. You should use Trainer.processing_class instead."
        )
        return self.processing_class

    def set_tokenizer(self, processing_class) -> None:  # noqa: ANN001
        logger.warning_once(
            "Trainer.tokenizer is now deprecated. You should use `Trainer.processing_class = processing_class` instead."
        )
        self.processing_class = processing_class

    return property(tokenizer, set_tokenizer)


REGISTRY.add(
    Record(
        id="transformers-trainer-tokenizer-attribute",
        affects="transformers>=5.0.0",
        module="transformers.trainer",
        name="Trainer.tokenizer",
        kind="backport",
        fixes="AttributeError: 'Trainer' object has no attribute 'tokenizer'",
        works="transformers<5.0.0 (deprecated property since 4.46)",
        breaks="transformers>=5.0.0",
        upstream="transformers v4.57.1 src/transformers/trainer.py (Trainer.tokenizer property); "
        "https://github.com/huggingface/transformers/pull/43733",
        remove_when="callers use trainer.processing_class",
        provide=_tokenizer_property,
    )
)


# --- resume_from_checkpoint with torch >= 2.6 (weights_only=True by default) -------------------------


def _safe_globals() -> object:
    import contextlib

    import numpy as np
    import torch
    from packaging import version

    # Faithful copy of transformers 4.47.1's helper (src/transformers/trainer.py::safe_globals):
    # allow-list exactly the numpy objects an RNG-state checkpoint holds; never weights_only=False.
    if version.parse(torch.__version__).release < version.parse("2.6").release:
        return contextlib.nullcontext()

    np_core = np._core if version.parse(np.__version__) >= version.parse("2.0.0") else np.core
    allowlist = [np_core.multiarray._reconstruct, np.ndarray, np.dtype]
    # numpy >1.25 defines numpy.dtypes.UInt32DType, but below works for
    # all versions of numpy
    allowlist += [type(np.dtype(np.uint32))]

    return torch.serialization.safe_globals(allowlist)


def _load_rng_state(module: ModuleType) -> object:
    import functools

    func = module.Trainer._load_rng_state

    @functools.wraps(func)
    def _load_rng_state(self, checkpoint):  # noqa: ANN001, ANN202
        with _safe_globals():
            return func(self, checkpoint)

    _load_rng_state.__odin_record__ = "transformers-rng-state-weights-only"  # type: ignore[attr-defined]
    return _load_rng_state


def _load_rng_state_needed(module: ModuleType) -> bool:
    import torch.serialization

    return (
        "safe_globals" not in vars(module)  # transformers >= 4.47 wraps the load itself
        and hasattr(torch.serialization, "safe_globals")  # torch >= 2.6 (weights_only=True default)
        and not adapted(module.Trainer._load_rng_state, "transformers-rng-state-weights-only")
    )


REGISTRY.add(
    Record(
        id="transformers-rng-state-weights-only",
        affects="transformers<4.47.0",
        module="transformers.trainer",
        name="Trainer._load_rng_state",
        kind="wrap",
        fixes="_pickle.UnpicklingError: Weights only load failed. ... Unsupported global: GLOBAL "
        "numpy._core.multiarray._reconstruct (Trainer.train(resume_from_checkpoint=...))",
        works="transformers>=4.47.0, or torch<2.6",
        breaks="transformers<4.47.0 with torch>=2.6",
        upstream="transformers v4.47.1 src/transformers/trainer.py::safe_globals (accelerate PR #3036); "
        "https://github.com/huggingface/transformers/issues/34631; https://github.com/huggingface/trl/issues/3247",
        remove_when="odin supports only transformers>=4.47",
        provide=_load_rng_state,
        needed=_load_rng_state_needed,
    )
)


# --- TrainingArguments(warmup_ratio=...) and (overwrite_output_dir=...): removed in 5.0 -----------


def _training_args_adapter(record_id: str, param: str, adapt_one: object) -> tuple:
    from odin_compat._records import kwarg_adapter

    def provide(module: ModuleType) -> object:
        def adapt(args: tuple, kwargs: dict) -> tuple:
            if param in kwargs:
                adapt_one(kwargs, kwargs.pop(param))  # type: ignore[operator]
            return args, kwargs

        return kwarg_adapter(module.TrainingArguments.__init__, adapt, record_id)

    def needed(module: ModuleType) -> bool:
        func = module.TrainingArguments.__init__
        return not adapted(func, record_id) and not accepts(func, param)

    return provide, needed


def _warmup_ratio(kwargs: dict, ratio: float) -> None:
    import math

    from odin_compat._records import warn_once

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
    from odin_compat._records import warn_once

    # Trainer never read it (transformers 4.57 trainer.py has no use): only example scripts did.
    warn_once(
        "transformers-overwrite-output-dir",
        "`overwrite_output_dir` was removed in transformers 5.0 (Trainer never used it); odin_compat dropped it.",
    )


_provide, _needed = _training_args_adapter("transformers-warmup-ratio", "warmup_ratio", _warmup_ratio)
REGISTRY.add(
    Record(
        id="transformers-warmup-ratio",
        affects="transformers>=5.0.0",
        module="transformers.training_args",
        name="TrainingArguments.__init__",
        kind="kwarg",
        fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'warmup_ratio'",
        works="transformers<5.0.0",
        breaks="transformers>=5.0.0 (warmup_steps takes a float ratio instead)",
        upstream="transformers v4.57.1 src/transformers/training_args.py (warmup_ratio, get_warmup_steps); "
        "v5.24.0 training_args.py::get_warmup_steps",
        remove_when="callers pass warmup_steps=<ratio>",
        provide=_provide,
        needed=_needed,
    )
)

_provide, _needed = _training_args_adapter(
    "transformers-overwrite-output-dir", "overwrite_output_dir", _overwrite_output_dir
)
REGISTRY.add(
    Record(
        id="transformers-overwrite-output-dir",
        affects="transformers>=5.0.0",
        module="transformers.training_args",
        name="TrainingArguments.__init__",
        kind="kwarg",
        fixes="TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'overwrite_output_dir'",
        works="transformers<5.0.0",
        breaks="transformers>=5.0.0",
        upstream="transformers v4.57.1 src/transformers/training_args.py (field, unused by Trainer); removed in 5.0.0",
        remove_when="callers stop passing it",
        provide=_provide,
        needed=_needed,
    )
)


def _group_by_length(kwargs: dict, value: bool) -> None:
    from odin_compat._records import warn_once

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
    from odin_compat._records import warn_once

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


for _id, _param, _adapt_one, _fixes, _upstream in (
    (
        "transformers-group-by-length",
        "group_by_length",
        _group_by_length,
        "TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'group_by_length'",
        "transformers v4.57.1 training_args.py (group_by_length); v5.24.0 training_args.py (train_sampling_strategy)",
    ),
    (
        "transformers-include-inputs-for-metrics",
        "include_inputs_for_metrics",
        _include_inputs_for_metrics,
        "TypeError: TrainingArguments.__init__() got an unexpected keyword argument 'include_inputs_for_metrics'",
        "transformers v4.57.1 training_args.py lines 2158-2162 (deprecated for include_for_metrics)",
    ),
):
    _provide, _needed = _training_args_adapter(_id, _param, _adapt_one)
    REGISTRY.add(
        Record(
            id=_id,
            affects="transformers>=5.0.0",
            module="transformers.training_args",
            name="TrainingArguments.__init__",
            kind="kwarg",
            fixes=_fixes,
            works="transformers<5.0.0",
            breaks="transformers>=5.0.0",
            upstream=_upstream,
            remove_when=f"callers stop passing {_param}",
            provide=_provide,
            needed=_needed,
        )
    )


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


def translate_flags(dataclass_types: abc.Iterable[type], args: list[str]) -> tuple[list[str], list[str]]:
    """`args` with the removed flags of FLAGS translated; and the flags translated.

    A flag is translated only when a parsed dataclass derives from the class that dropped it and no
    parsed dataclass still has a field of that name (a script's own dataclass may declare it).
    """
    import dataclasses

    types = list(dataclass_types)
    fields = {f.name for t in types if dataclasses.is_dataclass(t) for f in dataclasses.fields(t)}
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


def _parse_args(module: ModuleType) -> object:
    import functools
    import sys

    from odin_compat._records import warn_once

    func = module.HfArgumentParser.parse_args_into_dataclasses

    @functools.wraps(func)
    def parse_args_into_dataclasses(self, args=None, *rest, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if args is None and not rest and not kwargs.get("args_filename") and not kwargs.get("args_file_flag"):
            args = sys.argv[1:]
        if args is not None:
            args, done = translate_flags(self.dataclass_types, list(args))
            if done:
                warn_once(
                    "transformers-hfargparser-removed-flags:" + ",".join(sorted(done)),
                    f"The command-line flags {['--' + d for d in sorted(done)]} were removed from this release; "
                    "odin_compat translated them as the release that had them did. Use their replacements.",
                )
        return func(self, args, *rest, **kwargs)

    parse_args_into_dataclasses.__odin_record__ = "transformers-hfargparser-removed-flags"  # type: ignore[attr-defined]
    return parse_args_into_dataclasses


def _parse_args_needed(module: ModuleType) -> bool:
    import dataclasses

    if adapted(module.HfArgumentParser.parse_args_into_dataclasses, "transformers-hfargparser-removed-flags"):
        return False
    from transformers.training_args import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    # needed when TrainingArguments lacks one of its removed flags, or another record module added flags
    return any(
        name not in fields if owner == "TrainingArguments" else True for name, (owner, _, _) in FLAGS.items()
    )


REGISTRY.add(
    Record(
        id="transformers-hfargparser-removed-flags",
        affects="transformers>=4.51.0",
        module="transformers.hf_argparser",
        name="HfArgumentParser.parse_args_into_dataclasses",
        kind="wrap",
        fixes="ValueError: Some specified arguments are not used by the HfArgumentParser: ['--warmup_ratio', ...] "
        "(also --evaluation_strategy, --overwrite_output_dir, --no_cuda, --group_by_length, "
        "--include_inputs_for_metrics; trl: --max_seq_length)",
        works="transformers<4.51.0 (evaluation_strategy), <5.0.0 (the others)",
        breaks="transformers>=4.51.0 / >=5.0.0, each as its keyword record",
        upstream="transformers v4.57.1 src/transformers/training_args.py (the fields and their __post_init__); "
        "v5.24.0 src/transformers/hf_argparser.py",
        remove_when="callers pass the replacement flags",
        provide=_parse_args,
        needed=_parse_args_needed,
    )
)


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

    from odin_compat._records import warn_once

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


def _from_pretrained(module: ModuleType) -> object:
    from odin_compat._records import kwarg_adapter

    func = vars(module.PreTrainedModel)["from_pretrained"].__func__
    return classmethod(
        kwarg_adapter(func, _from_pretrained_adapt, "transformers-from-pretrained-removed-kwargs")
    )


def _from_pretrained_needed(module: ModuleType) -> bool:
    import inspect

    method = vars(module.PreTrainedModel).get("from_pretrained")
    func = getattr(method, "__func__", None)
    if func is None or adapted(func, "transformers-from-pretrained-removed-kwargs"):
        return False
    # transformers < 5 pops these keywords itself; 5 lets them through to the model's __init__
    return '"use_auth_token"' not in inspect.getsource(func)


REGISTRY.add(
    Record(
        id="transformers-from-pretrained-removed-kwargs",
        affects="transformers>=5.0.0",
        module="transformers.modeling_utils",
        name="PreTrainedModel.from_pretrained",
        kind="kwarg",
        fixes="TypeError: LlamaForCausalLM.__init__() got an unexpected keyword argument 'use_auth_token' "
        "(also 'load_in_8bit', 'load_in_4bit', 'resume_download', 'use_flash_attention_2'; "
        "through AutoModel*.from_pretrained too)",
        works="transformers<5.0.0 (use_flash_attention_2: <4.57)",
        breaks="transformers>=5.0.0",
        upstream="transformers v4.57.1 src/transformers/modeling_utils.py (PreTrainedModel.from_pretrained); "
        "v4.51.3 (_autoset_attn_implementation, use_flash_attention_2)",
        remove_when="callers pass token=, quantization_config=, attn_implementation=",
        provide=_from_pretrained,
        needed=_from_pretrained_needed,
    )
)
