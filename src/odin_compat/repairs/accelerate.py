"""Records for accelerate."""

from __future__ import annotations

from odin_compat.records import accepting, kwarg_adapter, lacks_kwarg, record, relocate, warn_once

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from odin_compat.records import Record

_FP8 = "https://github.com/huggingface/accelerate/blob/v1.12.0/src/accelerate/utils/dataclasses.py"
_TPU_ERROR = "ImportError: cannot import name 'is_tpu_available' from 'accelerate.utils'"


@record(
    "accelerate-fp8backendtype",
    "accelerate.utils.dataclasses:FP8BackendType",
    kind="backport",
    fixes="NameError: name 'FP8BackendType' is not defined / ImportError: cannot import name 'FP8BackendType'",
    affects="accelerate<0.34.0",
    upstream=_FP8,
    remove_when="odin supports only accelerate>=0.34",
    proof="test_fp8_releases::",
)
def _fp8_backend_type(module: ModuleType, record: Record) -> type:
    from odin_compat.repairs._vendor import accelerate_1_12

    return relocate(accelerate_1_12.FP8BackendType, module.__name__)  # type: ignore[return-value]


@record(
    "accelerate-utils-fp8backendtype",
    "accelerate.utils:FP8BackendType",
    kind="alias",
    fixes="ImportError: cannot import name 'FP8BackendType' from 'accelerate.utils'",
    affects="accelerate",
    note="(no release exports it from accelerate.utils)",
    upstream="https://github.com/huggingface/accelerate/blob/v1.12.0/src/accelerate/utils/__init__.py",
    remove_when="accelerate exports it from accelerate.utils",
    proof="test_fp8_releases::test_identity",
)
def _from_dataclasses(module: ModuleType, record: Record) -> type:
    from accelerate.utils import dataclasses

    return dataclasses.FP8BackendType


@record(
    "accelerate-unwrap-model-keep-torch-compile",
    "accelerate.accelerator:Accelerator.unwrap_model",
    kind="kwarg",
    fixes="TypeError: Accelerator.unwrap_model() got an unexpected keyword argument 'keep_torch_compile'",
    affects="accelerate<1.3.0",
    note="with transformers>=4.52 (Trainer passes keep_torch_compile=False)",
    upstream="https://github.com/huggingface/accelerate/pull/3282 (accelerate 1.3.0 "
    "src/accelerate/utils/other.py::extract_model_from_parallel); "
    "https://github.com/hiyouga/LLaMA-Factory/issues/8451",
    remove_when="odin supports only accelerate>=1.3",
    needed=lacks_kwarg("Accelerator.unwrap_model", "keep_torch_compile"),
    proof="test_repairs_accelerate::test_unwrap_model",
)
def _unwrap_model(module: ModuleType, record: Record) -> object:
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

    unwrap_model.__odin_record__ = record.id  # type: ignore[attr-defined]
    return unwrap_model


@record(
    "accelerate-clear-device-cache",
    "accelerate.utils.memory:clear_device_cache",
    kind="backport",
    fixes="ImportError: cannot import name 'clear_device_cache' from 'accelerate.utils.memory'",
    affects="accelerate<0.32.0",
    note="with peft>=0.15 (peft/utils/loftq_utils.py imports it)",
    upstream="https://github.com/huggingface/accelerate/blob/v0.33.0/src/accelerate/utils/memory.py "
    "(PRs #2857, #2914); https://github.com/OpenBMB/MiniCPM-V/issues/926",
    remove_when="odin supports only accelerate>=0.32",
    proof="test_repairs_accelerate::test_clear_device_cache",
)
def _clear_device_cache(module: ModuleType, record: Record) -> object:
    from odin_compat.repairs._vendor import accelerate_0_33

    return relocate(accelerate_0_33.clear_device_cache, module.__name__)


# The Accelerator arguments accelerate 1.0 removed for DataLoaderConfiguration.
_MOVED_DL_ARGS = ("dispatch_batches", "split_batches", "even_batches", "use_seedable_sampler")


@record(
    "accelerate-dataloader-args",
    "accelerate.accelerator:Accelerator.__init__",
    kind="kwarg",
    fixes="TypeError: Accelerator.__init__() got an unexpected keyword argument 'dispatch_batches' "
    "(also 'even_batches', 'use_seedable_sampler')",
    affects="accelerate>=1.0.0",
    note="with transformers<4.41 (Trainer passes dispatch_batches/split_batches; deprecated since 0.28.0)",
    upstream="https://github.com/huggingface/accelerate/pull/2441 (DataLoaderConfiguration, 0.28.0); "
    "https://github.com/huggingface/accelerate/pull/3098 (removal, 1.0.0); "
    "accelerate v0.34.2 src/accelerate/accelerator.py lines 437-462",
    remove_when="odin supports only transformers>=4.41",
    needed=lacks_kwarg("Accelerator.__init__", *_MOVED_DL_ARGS, given="dataloader_config"),
    proof="test_repairs_accelerate::test_dataloader_args",
)
def _accelerator_init(module: ModuleType, record: Record) -> object:
    func = module.Accelerator.__init__
    takes = accepting(func)
    missing = [k for k in _MOVED_DL_ARGS if not takes(k)]

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
            record.id,
            "Passing the following arguments to `Accelerator` was deprecated and removed in version 1.0 of "
            f"Accelerate: {list(moved)}; odin_compat moved them. Please pass an "
            f"`accelerate.DataLoaderConfiguration` instead: \ndataloader_config = DataLoaderConfiguration({values})",
        )
        return args, kwargs

    return kwarg_adapter(func, adapt, record.id)


@record(
    "accelerate-is-tpu-available",
    "accelerate.utils.imports:is_tpu_available",
    kind="backport",
    fixes=_TPU_ERROR + " / from 'accelerate.utils.imports'",
    affects="accelerate>=1.0.0",
    upstream="https://github.com/huggingface/accelerate/blob/v0.34.2/src/accelerate/utils/imports.py "
    "(removed by PR #3098)",
    remove_when="no supported caller imports is_tpu_available",
    proof=(
        "test_repairs_accelerate::test_is_tpu_available_breaks",
        "test_repairs_accelerate::test_is_tpu_available_backport_untouched",
    ),
)
def _is_tpu_available(module: ModuleType, record: Record) -> object:
    from odin_compat.repairs._vendor import accelerate_0_34

    return relocate(accelerate_0_34.is_tpu_available, module.__name__)


@record(
    "accelerate-utils-is-tpu-available",
    "accelerate.utils:is_tpu_available",
    kind="alias",
    fixes=_TPU_ERROR,
    affects="accelerate>=0.28.0",
    note="(export dropped; the function itself removed in 1.0.0)",
    upstream="https://github.com/huggingface/accelerate/blob/v0.27.2/src/accelerate/utils/__init__.py",
    remove_when="no supported caller imports is_tpu_available",
    proof=(
        "test_repairs_accelerate::test_is_tpu_available_breaks",
        "test_repairs_accelerate::test_is_tpu_available_untouched_on_0_27",
    ),
)
def _from_imports_tpu(module: ModuleType, record: Record) -> object:
    from accelerate.utils import imports

    return imports.is_tpu_available
