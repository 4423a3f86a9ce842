"""From trl 1.7.1: `get_kbit_device_map`.

Source: https://github.com/huggingface/trl/blob/v1.7.1/trl/trainer/utils.py
"""


def get_kbit_device_map() -> dict[str, int] | None:
    import torch
    from accelerate import PartialState
    from transformers.utils import is_torch_xpu_available

    if torch.cuda.is_available() or is_torch_xpu_available():
        return {"": PartialState().local_process_index}
    else:
        return None
