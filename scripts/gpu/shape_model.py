"""Write a random-init model in SmolLM2-135M's shape, bf16, with .bench's BPE tokenizer, to argv[1].

The shipped model's compute without carrying its 98 MB GGUF to the device. Used by the GPU scripts.
"""

import sys

import accelerate
import peft
import torch
import transformers
import trl
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

tok = PreTrainedTokenizerFast.from_pretrained(".bench/tokenizer")
tok.chat_template = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
torch.manual_seed(0)
cfg = LlamaConfig(
    vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, max_position_embeddings=2048, tie_word_embeddings=True, rms_norm_eps=1e-5,
    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
)  # fmt: skip
LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(sys.argv[1])
tok.save_pretrained(sys.argv[1])
print(
    "torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__,
    "peft", peft.__version__, "accelerate", accelerate.__version__, "gpus", torch.cuda.device_count(),
)  # fmt: skip
