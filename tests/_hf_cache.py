"""A Hugging Face cache built by the tests, in the cache's own layout, with a tiny model and datasets.

No hub is reachable from CI, so what `hf download` would leave behind is written directly:
``$HF_HOME/hub/{models,datasets}--org--name/{refs/<ref>, snapshots/<commit>/...}``. Loading
through it with ``HF_HUB_OFFLINE=1`` runs transformers' and datasets' real cache lookups.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MODEL = "odin-test/tiny-lm"  # refs main (1 layer) and v2 (2 layers)
DATASET = "odin-test/dates"  # refs main (16 train rows, 4 test rows) and v2 (8 train rows)
CONFIGS = "odin-test/multi"  # configs "small" (3 rows) and "large" (6 rows), declared in README.md
IMDB = "odin-test/imdb"  # laid out as stanfordnlp/imdb: plain_text/{train,test}-*.parquet, text + label


def _commit(n: int) -> str:
    return f"{n:040x}"


def _snapshot(home: Path, kind: str, repo: str, ref: str, n: int) -> Path:
    root = home / "hub" / f"{kind}--{repo.replace('/', '--')}"
    snap = root / "snapshots" / _commit(n)
    snap.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / ref).write_text(_commit(n))
    return snap


def snapshot(home: Path, repo: str = MODEL, ref: str = "main") -> Path:
    """The snapshot folder a ref points at: a plain local model folder."""
    root = home / "hub" / f"models--{repo.replace('/', '--')}"
    return root / "snapshots" / (root / "refs" / ref).read_text().strip()


def tiny_tokenizer():
    """A byte-level BPE tokenizer trained on the spot, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["Rewrite 2024-01-02 as DD/MM/YYYY. 02/01/2024 user assistant"] * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return fast


def tiny_model(tokenizer, layers: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def _portable_tokenizer(snap: Path, chat_template: str) -> None:
    """Readable by transformers 4.x too: a class name it knows, the chat template inline."""
    path = snap / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config.update(tokenizer_class="PreTrainedTokenizerFast", chat_template=chat_template)
    path.write_text(json.dumps(config, indent=2))


def rows(n: int, start: int = 0) -> list[dict]:
    return [
        {"prompt": f"Rewrite 2024-01-{d:02d} as DD/MM/YYYY.\n", "completion": f"{d:02d}/01/2024"}
        for d in range(1 + start, 1 + start + n)
    ]


def _parquet(path: Path, data: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(data), path)


def build(home: Path) -> Path:
    """Write the tiny model and datasets into ``home`` (an HF_HOME) and return it."""
    tok = tiny_tokenizer()
    for ref, n, layers in (("main", 1, 1), ("v2", 2, 2)):
        snap = _snapshot(home, "models", MODEL, ref, n)
        tiny_model(tok, layers).save_pretrained(snap, safe_serialization=True)
        tok.save_pretrained(snap)
        _portable_tokenizer(snap, tok.chat_template)
    main = _snapshot(home, "datasets", DATASET, "main", 3)
    _parquet(main / "data" / "train-00000-of-00001.parquet", rows(16))
    _parquet(main / "data" / "test-00000-of-00001.parquet", rows(4, start=20))
    v2 = _snapshot(home, "datasets", DATASET, "v2", 4)
    _parquet(v2 / "data" / "train-00000-of-00001.parquet", rows(8))
    multi = _snapshot(home, "datasets", CONFIGS, "main", 5)
    (multi / "README.md").write_text(
        "---\nconfigs:\n"
        "- config_name: small\n  data_files:\n  - split: train\n    path: small/train.jsonl\n"
        "- config_name: large\n  data_files:\n  - split: train\n    path: large/train.jsonl\n---\n"
    )
    imdb = _snapshot(home, "datasets", IMDB, "main", 6)
    for split, n in (("train", 8), ("test", 2)):
        reviews = [
            {"text": f"Review {i}: a {'good' if i % 2 else 'bad'} film.", "label": i % 2} for i in range(n)
        ]
        _parquet(imdb / "plain_text" / f"{split}-00000-of-00001.parquet", reviews)
    for name, n in (("small", 3), ("large", 6)):
        (multi / name).mkdir()
        (multi / name / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(n)))
    return home


def odin_src() -> str:
    """The source folder of the odin_slm that this test process imports (the subprocesses use it too)."""
    import odin_slm

    return str(Path(odin_slm.__file__).resolve().parents[1])


def offline_env(home: Path, pythonpath: str | None = None) -> dict[str, str]:
    """The environment of a user with this cache and no hub: HF_HOME set, HF_HUB_OFFLINE=1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    paths = [p for p in (pythonpath, odin_src(), env.get("PYTHONPATH")) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600
    )
