"""Run by tests/test_slm_async_save.py under `torchrun --nproc_per_node 2` on CPU (gloo): TRL's SFTTrainer
(odin's trainer class) on a tiny model, saving every 3 of 6 steps, its checkpoints written in the loop or
in the background.

    python -m torch.distributed.run --nproc_per_node 2 tests/_ddp_checkpoints.py OUT sync|pinned [CHECKPOINT]
"""

import sys

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import SFTConfig, SFTTrainer

from odin_slm import fast

out, mode = sys.argv[1], sys.argv[2]
resume = sys.argv[3] if len(sys.argv) > 3 else None
vocab = {f"t{i}": i for i in range(64)}
tokenizer = PreTrainedTokenizerFast(
    tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")), pad_token="t1", eos_token="t2"
)
torch.manual_seed(0)
config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)  # fmt: skip
model = LlamaForCausalLM(config)
model._odin_async_save = False if mode == "sync" else mode
args = SFTConfig(output_dir=out, report_to="none", use_cpu=True, per_device_train_batch_size=2, logging_steps=1,
                 learning_rate=1e-2, seed=0, save_steps=3, max_steps=6, disable_tqdm=True)  # fmt: skip
rows = [[(3 * i + j) % 60 + 2 for j in range(10 + i % 3)] for i in range(32)]
trainer = fast.trainer_class(SFTTrainer)(
    model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": rows}), processing_class=tokenizer
)
background = trainer._odin_writer is not None
reserves = any(type(cb).__name__ == "ReservePinnedMemory" for cb in trainer.callback_handler.callbacks)
trainer.train(resume_from_checkpoint=resume)
print(f"rank {args.process_index}: background={background} reserves={reserves}", flush=True)
torch.distributed.destroy_process_group()  # a rank that exits with its group alive can abort (gloo)
