"""gpu-full's Trainer in SmolLM2-135M's shape for the save scripts (profile_save.py, device_fallback.py):
fp32 weights, fused AdamW, trained 3 steps so that the optimizer state exists; it never saves by itself."""

from __future__ import annotations

from typing import Any


def trained(model_dir: str, out: str) -> Any:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from odin_slm import fast

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).cuda()
    args = SFTConfig(output_dir=out, report_to="none", max_steps=3, per_device_train_batch_size=8,
                     save_strategy="no", disable_tqdm=True, bf16=True, max_length=128)  # fmt: skip
    fast.tune(model, args, lora=False, compile_layers=False)
    rows = [[(7 * i + j) % 4000 + 10 for j in range(100)] for i in range(64)]
    trainer = fast.trainer_class(SFTTrainer)(
        model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": rows}), processing_class=tok
    )
    trainer.train()
    return trainer
