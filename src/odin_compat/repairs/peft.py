"""Records for peft."""

from __future__ import annotations

from odin_compat.records import record, relocate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from odin_compat.records import Record

_UPSTREAM = (
    "https://github.com/huggingface/peft/blob/v0.9.0/src/peft/utils/other.py (removed in 0.10.0); "
    "https://github.com/huggingface/peft/issues/1573"
)


@record(
    "peft-prepare-model-for-int8-training",
    "peft.utils.other:prepare_model_for_int8_training",
    kind="backport",
    fixes="ImportError: cannot import name 'prepare_model_for_int8_training' from 'peft.utils.other'",
    affects="peft>=0.10.0",
    upstream=_UPSTREAM,
    remove_when="callers use prepare_model_for_kbit_training",
    proof="test_repairs_peft::test_int8_training",
)
def _int8_training(module: ModuleType, record: Record) -> object:
    from odin_compat.repairs._vendor import peft_0_9

    return relocate(peft_0_9.prepare_model_for_int8_training, module.__name__)


@record(
    "peft-utils-prepare-model-for-int8-training-export",
    "peft.utils:prepare_model_for_int8_training",
    kind="alias",
    fixes="ImportError: cannot import name 'prepare_model_for_int8_training' from 'peft.utils'",
    affects="peft>=0.10.0",
    upstream=_UPSTREAM,
    remove_when="callers use prepare_model_for_kbit_training",
    proof="test_repairs_peft::test_int8_training",
)
@record(
    "peft-prepare-model-for-int8-training-export",
    "peft:prepare_model_for_int8_training",
    kind="alias",
    fixes="ImportError: cannot import name 'prepare_model_for_int8_training' from 'peft'",
    affects="peft>=0.10.0",
    upstream=_UPSTREAM,
    remove_when="callers use prepare_model_for_kbit_training",
    proof="test_repairs_peft::test_int8_training",
)
def _from_other(module: ModuleType, record: Record) -> object:
    from peft.utils import other

    return other.prepare_model_for_int8_training
