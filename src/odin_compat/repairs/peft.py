"""Records for peft."""

from __future__ import annotations

from odin_compat.records import kwarg_adapter, record, relocate, renaming, warn_once

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


# --- PeftModel.save_pretrained(convert_pissa_to_lora=...) -> path_initial_model_for_weight_conversion -------


@record(
    "peft-save-pretrained-convert-pissa-to-lora",
    "peft.peft_model:PeftModel.save_pretrained",
    kind="kwarg",
    fixes="PeftModel.save_pretrained(convert_pissa_to_lora=...) saves the adapter unconverted: "
    "'convert_pissa_to_lora' goes into **kwargs and is ignored (no error)",
    affects="peft>=0.14.0",
    note="(deprecated for path_initial_model_for_weight_conversion; 0.15.2 lacks it)",
    upstream="peft v0.13.2 src/peft/peft_model.py (PeftModel.save_pretrained: convert_pissa_to_lora, "
    "'TODO: remove deprecated parameter in PEFT v0.14.0')",
    remove_when="callers pass path_initial_model_for_weight_conversion",
    needed=renaming(
        "PeftModel.save_pretrained", "convert_pissa_to_lora", "path_initial_model_for_weight_conversion"
    ),
    proof="test_repairs_peft::test_save_pretrained_convert_pissa_to_lora",
)
def _convert_pissa_to_lora(module: ModuleType, record: Record) -> object:
    func = module.PeftModel.save_pretrained

    def adapt(args: tuple, kwargs: dict) -> tuple:
        # As peft 0.13.2: a given convert_pissa_to_lora wins over path_initial_model_for_weight_conversion.
        value = kwargs.pop("convert_pissa_to_lora", None)
        if value is not None:
            warn_once(
                record.id,
                "`convert_pissa_to_lora` is deprecated and will be removed in a future version. "
                "Use `path_initial_model_for_weight_conversion` instead (odin_compat renamed it).",
                UserWarning,
            )
            kwargs["path_initial_model_for_weight_conversion"] = value
        return args, kwargs

    wrapper = kwarg_adapter(func, adapt, record.id)
    wrapper.__odin_rename__ = "convert_pissa_to_lora"  # type: ignore[attr-defined]  # renaming() sees it
    return wrapper
