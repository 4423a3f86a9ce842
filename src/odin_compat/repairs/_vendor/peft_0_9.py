"""From peft 0.9.0: the `prepare_model_for_int8_training` shim. It warned on every call; this copy
warns once.

Source: https://github.com/huggingface/peft/blob/v0.9.0/src/peft/utils/other.py
"""

from peft.utils.other import prepare_model_for_kbit_training

from odin_compat.records import warn_once


def prepare_model_for_int8_training(*args, **kwargs):
    warn_once(
        "peft-prepare-model-for-int8-training",
        "prepare_model_for_int8_training is deprecated and will be removed in a future version. "
        "Use prepare_model_for_kbit_training instead.",
    )
    return prepare_model_for_kbit_training(*args, **kwargs)
