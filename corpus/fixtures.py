"""Local stand-ins for the hub: a tiny Llama model with its tokenizer, and small datasets.

Everything is built in place (nothing is downloaded). `build(folder)` writes:
  tiny-llama/              LlamaConfig model (2 layers, hidden 32) + byte-level BPE tokenizer
  data/<kind>/{train,test}.jsonl   text, chat, preference, KTO (two layouts), and hh-rlhf style rows
  Anthropic/hh-rlhf/       the hub id an old script hard-codes, as a local dataset folder
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

VERSION = "2\n"  # bump when the fixtures change: they are rebuilt

WORDS = (
    "the a model data train small fast slow date year month day token text answer question "
    "convert write read list first last good bad yes no one two three four five"
).split()


def _sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _write(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    split = len(rows) * 3 // 4
    for name, part in (("train", rows[:split]), ("test", rows[split:])):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for row in part:
                f.write(json.dumps(row) + "\n")


def build(root: Path, n: int = 64) -> Path:
    """Create the fixtures under `root` (once); returns `root`."""
    done = root / ".complete"
    if done.exists() and done.read_text() == VERSION:
        return root
    rng = random.Random(0)
    text = [{"text": _sentence(rng, 24)} for _ in range(n)]
    chat, pref, pref_hh, kto, kto_conv, hh = [], [], [], [], [], []
    for i in range(n):
        q, a, b = _sentence(rng, 6), _sentence(rng, 8), _sentence(rng, 8)
        user = {"role": "user", "content": q}
        chat.append({"messages": [user, {"role": "assistant", "content": a}]})
        pref.append({"chosen": [user, {"role": "assistant", "content": a}],
                     "rejected": [user, {"role": "assistant", "content": b}]})  # fmt: skip
        pref_hh.append({"prompt": q, "chosen": [{"role": "assistant", "content": a}],
                        "rejected": [{"role": "assistant", "content": b}]})  # fmt: skip
        kto.append({"prompt": [user], "completion": [{"role": "assistant", "content": a if i % 2 else b}],
                    "label": bool(i % 2)})  # fmt: skip
        # the older trl-lib/kto-mix-14k layout: the whole conversation in "completion"
        kto_conv.append({"prompt": [user], "completion": [user, {"role": "assistant", "content": a if i % 2 else b}],
                         "label": bool(i % 2)})  # fmt: skip
        hh.append(
            {"chosen": f"\n\nHuman: {q}\n\nAssistant: {a}", "rejected": f"\n\nHuman: {q}\n\nAssistant: {b}"}
        )
    for kind, rows in (
        ("text", text),
        ("chat", chat),
        ("pref", pref),
        ("pref-hh", pref_hh),
        ("kto", kto),
        ("kto-conv", kto_conv),
    ):
        _write(root / "data" / kind, rows)
    _write(root / "Anthropic" / "hh-rlhf", hh)

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [r["text"] for r in text] + ["Human: Assistant: <|user|> <|assistant|> <|system|>"] * 4
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", model_max_length=256)  # fmt: skip
    fast.chat_template = CHAT_TEMPLATE
    model_dir = root / "tiny-llama"
    fast.save_pretrained(model_dir)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                         pad_token_id=fast.pad_token_id, tie_word_embeddings=False)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(model_dir)
    done.write_text(VERSION)
    return root


if __name__ == "__main__":
    import sys

    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / ".work"))
