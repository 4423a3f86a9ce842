"""From accelerate 1.12.0: `FP8BackendType`.

Source: https://github.com/huggingface/accelerate/blob/v1.12.0/src/accelerate/utils/dataclasses.py
"""

import enum


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
