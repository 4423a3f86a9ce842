"""Records for accelerate."""

from __future__ import annotations

from odin_compat._records import REGISTRY, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType


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
