"""Records for accelerate."""

from __future__ import annotations

from odin_compat._records import REGISTRY, Record, accepts, adapted, kwarg_adapter, warn_once

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType


_FP8_DOC = """
    Represents the backend used for FP8.

    Values:

        - **TE** -- using TransformerEngine.
        - **MSAMP** -- using msamp.
    """


def _fp8_backend_type(module: ModuleType) -> type:
    import enum

    # Faithful copy of accelerate 1.12.0's class (src/accelerate/utils/dataclasses.py).
    class FP8BackendType(str, enum.Enum):
        """
        Represents the backend used for FP8.

        Values:

            - **TE** -- using TransformerEngine.
            - **MSAMP** -- using msamp.
        """

        # Subclassing str as well as Enum allows the `FP8BackendType` to be JSON-serializable out of the box.
        NO = "NO"
        TE = "TE"
        MSAMP = "MSAMP"
        AO = "AO"

    # Nested here so that `enum` is imported only when needed; keep upstream's exact docstring.
    FP8BackendType.__doc__ = _FP8_DOC
    FP8BackendType.__module__ = module.__name__
    FP8BackendType.__qualname__ = "FP8BackendType"
    return FP8BackendType


def _from_dataclasses(module: ModuleType) -> type:
    from accelerate.utils import dataclasses

    return dataclasses.FP8BackendType


FP8_ERROR = "NameError: name 'FP8BackendType' is not defined"

REGISTRY.add(
    Record(
        id="accelerate-fp8backendtype",
        module="accelerate.utils.dataclasses",
        name="FP8BackendType",
        kind="backport",
        fixes=FP8_ERROR + " / ImportError: cannot import name 'FP8BackendType'",
        works="accelerate>=0.34.0",
        breaks="accelerate<0.34.0",
        upstream="https://github.com/huggingface/accelerate/blob/v1.12.0/src/accelerate/utils/dataclasses.py",
        remove_when="odin supports only accelerate>=0.34",
        provide=_fp8_backend_type,
    )
)

REGISTRY.add(
    Record(
        id="accelerate-utils-fp8backendtype",
        module="accelerate.utils",
        name="FP8BackendType",
        kind="alias",
        fixes="ImportError: cannot import name 'FP8BackendType' from 'accelerate.utils'",
        works="none: no accelerate release exports it from accelerate.utils",
        breaks="all accelerate releases",
        upstream="https://github.com/huggingface/accelerate/blob/v1.12.0/src/accelerate/utils/__init__.py",
        remove_when="accelerate exports it from accelerate.utils",
        provide=_from_dataclasses,
    )
)


# --- Accelerator.unwrap_model(keep_torch_compile=...) ------------------------------------------


def _unwrap_model(module: ModuleType) -> object:
    import functools

    from accelerate.utils.other import is_compiled_module

    func = module.Accelerator.unwrap_model

    @functools.wraps(func)
    def unwrap_model(self, model, *args, keep_torch_compile=True, **kwargs):  # noqa: ANN001, ANN202
        # accelerate < 1.3 always kept the torch.compile wrapper, i.e. keep_torch_compile=True;
        # with False, 1.3.0 returns the module inside the compiled wrapper.
        model = func(self, model, *args, **kwargs)
        if not keep_torch_compile and is_compiled_module(model):
            model = model._orig_mod
        return model

    unwrap_model.__odin_record__ = "accelerate-unwrap-model-keep-torch-compile"  # type: ignore[attr-defined]
    return unwrap_model


def _unwrap_needs(module: ModuleType) -> bool:
    func = module.Accelerator.unwrap_model
    return not adapted(func, "accelerate-unwrap-model-keep-torch-compile") and not accepts(
        func, "keep_torch_compile"
    )


REGISTRY.add(
    Record(
        id="accelerate-unwrap-model-keep-torch-compile",
        affects="accelerate<1.3.0",
        module="accelerate.accelerator",
        name="Accelerator.unwrap_model",
        kind="kwarg",
        fixes="TypeError: Accelerator.unwrap_model() got an unexpected keyword argument 'keep_torch_compile'",
        works="accelerate>=1.3.0",
        breaks="accelerate<1.3.0 with transformers>=4.52 (Trainer passes keep_torch_compile=False)",
        upstream="https://github.com/huggingface/accelerate/pull/3282 (accelerate 1.3.0 "
        "src/accelerate/utils/other.py::extract_model_from_parallel); "
        "https://github.com/hiyouga/LLaMA-Factory/issues/8451",
        remove_when="odin supports only accelerate>=1.3",
        provide=_unwrap_model,
        needed=_unwrap_needs,
    )
)


# --- accelerate.utils.memory.clear_device_cache -------------------------------------------------


def _clear_device_cache(module: ModuleType) -> object:
    from accelerate.utils import imports

    def _false(*_a: object, **_k: object) -> bool:
        return False

    # Backends this accelerate release cannot check for are treated as absent.
    is_xpu_available = getattr(imports, "is_xpu_available", _false)
    is_mlu_available = getattr(imports, "is_mlu_available", _false)
    is_musa_available = getattr(imports, "is_musa_available", _false)
    is_npu_available = getattr(imports, "is_npu_available", _false)
    is_mps_available = getattr(imports, "is_mps_available", _false)

    # Faithful copy of accelerate 0.33.0's function (src/accelerate/utils/memory.py).
    def clear_device_cache(garbage_collection=False):
        """
        Clears the device cache by calling `torch.{backend}.empty_cache`. Can also run `gc.collect()`, but do note that
        this is a *considerable* slowdown and should be used sparingly.
        """
        import gc

        import torch

        if garbage_collection:
            gc.collect()

        if is_xpu_available():
            torch.xpu.empty_cache()
        elif is_mlu_available():
            torch.mlu.empty_cache()
        elif is_musa_available():
            torch.musa.empty_cache()
        elif is_npu_available():
            torch.npu.empty_cache()
        elif is_mps_available(min_version="2.0"):
            torch.mps.empty_cache()
        else:
            torch.cuda.empty_cache()

    clear_device_cache.__module__ = module.__name__
    return clear_device_cache


REGISTRY.add(
    Record(
        id="accelerate-clear-device-cache",
        affects="accelerate<0.32.0",
        module="accelerate.utils.memory",
        name="clear_device_cache",
        kind="backport",
        fixes="ImportError: cannot import name 'clear_device_cache' from 'accelerate.utils.memory'",
        works="accelerate>=0.32.0",
        breaks="accelerate<0.32.0 with peft>=0.15 (peft/utils/loftq_utils.py imports it)",
        upstream="https://github.com/huggingface/accelerate/blob/v0.33.0/src/accelerate/utils/memory.py "
        "(PRs #2857, #2914); https://github.com/OpenBMB/MiniCPM-V/issues/926",
        remove_when="odin supports only accelerate>=0.32",
        provide=_clear_device_cache,
    )
)


# --- Accelerator(dispatch_batches=..., even_batches=..., use_seedable_sampler=...) ------------

_MOVED_DL_ARGS = ("dispatch_batches", "split_batches", "even_batches", "use_seedable_sampler")


def _accelerator_init(module: ModuleType) -> object:
    func = module.Accelerator.__init__
    missing = [k for k in _MOVED_DL_ARGS if not accepts(func, k)]

    def adapt(args: tuple, kwargs: dict) -> tuple:
        moved = {k: kwargs.pop(k) for k in missing if k in kwargs}
        if not moved:
            return args, kwargs
        from accelerate.utils import DataLoaderConfiguration

        # As accelerate 0.34 did: set them on the given (or a new) DataLoaderConfiguration.
        config = kwargs.get("dataloader_config")
        if config is None:
            config = kwargs["dataloader_config"] = DataLoaderConfiguration()
        for key, value in moved.items():
            setattr(config, key, value)
        values = ", ".join(f"{k}={v}" for k, v in moved.items())
        warn_once(
            "accelerate-dataloader-args",
            "Passing the following arguments to `Accelerator` was deprecated and removed in version 1.0 of "
            f"Accelerate: {list(moved)}; odin_compat moved them. Please pass an "
            f"`accelerate.DataLoaderConfiguration` instead: \ndataloader_config = DataLoaderConfiguration({values})",
        )
        return args, kwargs

    return kwarg_adapter(func, adapt, "accelerate-dataloader-args")


def _accelerator_init_needs(module: ModuleType) -> bool:
    func = module.Accelerator.__init__
    return (
        not adapted(func, "accelerate-dataloader-args")
        and accepts(func, "dataloader_config")
        and not all(accepts(func, k) for k in _MOVED_DL_ARGS)
    )


REGISTRY.add(
    Record(
        id="accelerate-dataloader-args",
        affects="accelerate>=1.0.0",
        module="accelerate.accelerator",
        name="Accelerator.__init__",
        kind="kwarg",
        fixes="TypeError: Accelerator.__init__() got an unexpected keyword argument 'dispatch_batches' "
        "(also 'even_batches', 'use_seedable_sampler')",
        works="accelerate>=0.28.0,<1.0.0 (deprecated there, FutureWarning)",
        breaks="accelerate>=1.0.0 with transformers<4.41 (Trainer passes dispatch_batches/split_batches)",
        upstream="https://github.com/huggingface/accelerate/pull/2441 (DataLoaderConfiguration, 0.28.0); "
        "https://github.com/huggingface/accelerate/pull/3098 (removal, 1.0.0); "
        "accelerate v0.34.2 src/accelerate/accelerator.py lines 437-462",
        remove_when="odin supports only transformers>=4.41",
        provide=_accelerator_init,
        needed=_accelerator_init_needs,
    )
)


# --- is_tpu_available ----------------------------------------------------------------------------


def _is_tpu_available(module: ModuleType) -> object:
    imports = module

    # Faithful copy of accelerate 0.34.2's function (src/accelerate/utils/imports.py); it
    # warned on every call, odin warns once.
    def is_tpu_available(check_device=True):
        "Checks if `torch_xla` is installed and potentially if a TPU is in the environment"
        warn_once(
            "accelerate-is-tpu-available",
            "`is_tpu_available` is deprecated and will be removed in v0.27.0. "
            "Please use the `is_torch_xla_available` instead.",
        )
        # Due to bugs on the amp series GPUs, we disable torch-xla on them
        if imports.is_cuda_available():
            return False
        _tpu_available = imports._torch_xla_available
        if check_device:
            if _tpu_available:
                try:
                    import torch_xla.core.xla_model as xm

                    # Will raise a RuntimeError if no XLA configuration is found
                    _ = xm.xla_device()
                    return True
                except RuntimeError:
                    return False
        return _tpu_available

    is_tpu_available.__module__ = module.__name__
    return is_tpu_available


def _from_imports_tpu(module: ModuleType) -> object:
    from accelerate.utils import imports

    return imports.is_tpu_available


_TPU_ERROR = "ImportError: cannot import name 'is_tpu_available' from 'accelerate.utils'"

REGISTRY.add(
    Record(
        id="accelerate-is-tpu-available",
        affects="accelerate>=1.0.0",
        module="accelerate.utils.imports",
        name="is_tpu_available",
        kind="backport",
        fixes=_TPU_ERROR + " / from 'accelerate.utils.imports'",
        works="accelerate<1.0.0",
        breaks="accelerate>=1.0.0",
        upstream="https://github.com/huggingface/accelerate/blob/v0.34.2/src/accelerate/utils/imports.py "
        "(removed by PR #3098)",
        remove_when="no supported caller imports is_tpu_available",
        provide=_is_tpu_available,
    )
)

REGISTRY.add(
    Record(
        id="accelerate-utils-is-tpu-available",
        affects="accelerate>=0.28.0",
        module="accelerate.utils",
        name="is_tpu_available",
        kind="alias",
        fixes=_TPU_ERROR,
        works="accelerate<0.28.0 (exported from accelerate.utils)",
        breaks="accelerate>=0.28.0 (export dropped; the function itself removed in 1.0.0)",
        upstream="https://github.com/huggingface/accelerate/blob/v0.27.2/src/accelerate/utils/__init__.py",
        remove_when="no supported caller imports is_tpu_available",
        provide=_from_imports_tpu,
    )
)
