"""A user's fine-tuning script, as in the bug report: unsloth + TRL SFTTrainer, tiny and offline.

It builds a tiny random Llama and a locally trained byte-level BPE tokenizer (no hub), loads
them with unsloth's FastLanguageModel, adds LoRA (r=8) and trains 5 SFT steps on 64 rows.

The script itself never imports odin. `repro_fp8.sh` makes the "with odin" variant by writing
`import odin_compat` as a new first line of a copy of this file: that line is the only
difference. Run it from its own working directory (unsloth_zoo writes and imports
`unsloth_compiled_cache/` there, so the directory must be on sys.path: copy the script in).

Environment: LOAD_IN_4BIT=1 for bitsandbytes 4-bit loading (default 16-bit).
Prints `RESULT ok loss=...` on success; a crash ends with the traceback.
"""

# No `from __future__` import here: the odin variant puts `import odin_compat` above everything.
import json
import os
import sys

os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")  # unsloth pings the hub otherwise
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from unsloth import FastLanguageModel  # noqa: E402  (unsloth wants to be imported first)

# isort: split
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

LOAD_IN_4BIT = os.environ.get("LOAD_IN_4BIT", "0") == "1"
MODEL_DIR = os.path.abspath("tiny-llama")

TEXTS = [
    f"### Question: what is {a} plus {b}?\n### Answer: {a + b}. The sum of {a} and {b} is {a + b}."
    for a, b in ((i, (i * 7) % 13) for i in range(64))
]


def build_model(path: str) -> None:
    """A tiny random Llama and a byte-level BPE tokenizer trained here, saved like a hub model."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXTS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=specials[0], eos_token=specials[1], pad_token=specials[2]
    )
    fast.model_max_length = 256
    fast.padding_side = "right"
    fast.save_pretrained(path)

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        torch_dtype="bfloat16",
    )
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(path)


def main() -> int:
    if not os.path.isdir(MODEL_DIR):
        build_model(MODEL_DIR)

    model, tokenizer = FastLanguageModel.from_pretrained(
        MODEL_DIR,
        max_seq_length=128,
        dtype=None,
        load_in_4bit=LOAD_IN_4BIT,
        local_files_only=True,
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=8,
        lora_alpha=16,
        lora_dropout=0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=3407,
    )

    dataset = Dataset.from_dict({"text": [t + tokenizer.eos_token for t in TEXTS]})
    trainer = SFTTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=dataset,
        args=SFTConfig(
            output_dir="outputs",
            dataset_text_field="text",
            max_seq_length=128,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=1,
            max_steps=5,
            learning_rate=2e-4,
            logging_steps=1,
            optim="adamw_torch",
            bf16=True,
            report_to="none",
            save_strategy="no",
            seed=3407,
        ),
    )
    stats = trainer.train()
    n4bit = sum(type(m).__name__ == "Linear4bit" for m in model.modules())  # bitsandbytes layers
    print(
        f"RESULT ok loss={stats.training_loss:.4f} steps={stats.global_step} linear4bit={n4bit}", flush=True
    )

    # Reporting only (no effect on training): what odin did, when the variant imported it.
    if "odin_compat" in sys.modules:
        odin = sys.modules["odin_compat"]
        try:
            report = odin.report()
            healed, outcomes = report["healed"], report["outcomes"]
        except Exception as exc:  # odin_compat 0.1.0's report() fails on its slotted Outcome
            print(f"ODIN_REPORT_ERROR {exc!r}", flush=True)
            healed = [{"where": w, "name": n, "origin": o} for w, n, o in odin._heal.healed()]
            outcomes = [o.as_dict() for o in odin._records.REGISTRY.outcomes]
        print("ODIN_HEALED " + json.dumps(healed), flush=True)
        print("ODIN_OUTCOMES " + json.dumps(outcomes, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
