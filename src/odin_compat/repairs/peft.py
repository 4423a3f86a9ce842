"""Records for peft."""

from __future__ import annotations

from odin_compat._records import REGISTRY, Record, warn_once

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType


def _int8_training(module: ModuleType) -> object:
    prepare_model_for_kbit_training = module.prepare_model_for_kbit_training

    # Faithful copy of peft 0.9.0's shim (src/peft/utils/other.py); it warned on every call,
    # odin warns once.
    def prepare_model_for_int8_training(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        warn_once(
            "peft-prepare-model-for-int8-training",
            "prepare_model_for_int8_training is deprecated and will be removed in a future version. "
            "Use prepare_model_for_kbit_training instead.",
        )
        return prepare_model_for_kbit_training(*args, **kwargs)

    prepare_model_for_int8_training.__module__ = module.__name__
    return prepare_model_for_int8_training


def _from_other(module: ModuleType) -> object:
    from peft.utils import other

    return other.prepare_model_for_int8_training


_NAME = "prepare_model_for_int8_training"
_UPSTREAM = (
    "https://github.com/huggingface/peft/blob/v0.9.0/src/peft/utils/other.py (removed in 0.10.0); "
    "https://github.com/huggingface/peft/issues/1573"
)

REGISTRY.add(
    Record(
        id="peft-prepare-model-for-int8-training",
        affects="peft>=0.10.0",
        module="peft.utils.other",
        name=_NAME,
        kind="backport",
        fixes="ImportError: cannot import name 'prepare_model_for_int8_training' from 'peft.utils.other'",
        works="peft<0.10.0",
        breaks="peft>=0.10.0",
        upstream=_UPSTREAM,
        remove_when="callers use prepare_model_for_kbit_training",
        provide=_int8_training,
    )
)

for _module in ("peft.utils", "peft"):
    REGISTRY.add(
        Record(
            id=f"{_module.replace('.', '-')}-prepare-model-for-int8-training-export",
            affects="peft>=0.10.0",
            module=_module,
            name=_NAME,
            kind="alias",
            fixes=f"ImportError: cannot import name 'prepare_model_for_int8_training' from '{_module}'",
            works="peft<0.10.0",
            breaks="peft>=0.10.0",
            upstream=_UPSTREAM,
            remove_when="callers use prepare_model_for_kbit_training",
            provide=_from_other,
        )
    )
