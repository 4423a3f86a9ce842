"""odin_slm.data: formats, validation errors that name file:line, the shipped default task."""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import json

import pytest

from odin_slm import data
from odin_slm.data import DataError


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_default_files_are_the_generator_output(tmp_path):
    data.write_default_files(tmp_path)
    for name in (data.DEFAULT_TRAIN_FILE, data.DEFAULT_EVAL_FILE):
        assert (tmp_path / name).read_text() == (data.default_data_dir() / name).read_text(), name


def test_default_splits_are_disjoint_and_chat_format():
    s = data.load_splits(None, None, eval_samples=32, seed=0)
    assert s.fmt == "messages" and len(s.train) == 1024 and len(s.eval) == 32
    train_q = {r.data["messages"][1]["content"] for r in s.train}
    assert not train_q & {r.data["messages"][1]["content"] for r in s.eval}


@pytest.mark.parametrize(
    "name,text,fmt",
    [
        ("a.jsonl", '{"text": "hello"}\n\n{"text": "world"}\n', "text"),
        ("a.json", json.dumps([{"prompt": "p", "completion": "c"}]), "prompt-completion"),
        ("a.csv", "prompt,completion\nfoo,bar\n", "prompt-completion"),
        (
            "a.jsonl",
            json.dumps(
                {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
            ),
            "messages",
        ),
    ],
)
def test_formats(tmp_path, name, text, fmt):
    rows = data.read_rows(_write(tmp_path, name, text))
    assert data.validate(rows) == fmt


def test_datasets_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([{"text": "a"}, {"text": "b"}]).save_to_disk(str(tmp_path / "ds"))
    rows = data.read_rows(tmp_path / "ds")
    assert data.validate(rows) == "text" and rows[1].where.endswith("row 1")


@pytest.mark.parametrize(
    "name,text,where,words",
    [
        ("bad.jsonl", '{"text": "ok"}\n{"text": "ok"}\n{"text": oops}\n', "bad.jsonl:3", "not valid JSON"),
        ("bad.jsonl", '{"text": "ok"}\n{"txt": "x"}\n', "bad.jsonl:2", "none of the fields"),
        ("bad.jsonl", '{"prompt": "p", "completion": ""}\n', "bad.jsonl:1", "'completion' must be"),
        (
            "bad.jsonl",
            '{"messages": [{"role": "user", "content": "q"}]}\n',
            "bad.jsonl:1",
            "last message must be the assistant",
        ),
        ("bad.json", '[\n  {"text": "a"},\n  {"text": 5}\n]\n', "bad.json:3", "'text' must be"),
        ("bad.csv", "prompt,completion\na,b\nc,d,e\n", "bad.csv:3", "more fields"),
        ("mixed.jsonl", '{"text": "a"}\n{"prompt": "p", "completion": "c"}\n', "mixed.jsonl:2", "one format"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, name, text, where, words):
    with pytest.raises(DataError) as err:
        data.validate(data.read_rows(_write(tmp_path, name, text)))
    assert where in str(err.value) and words in str(err.value)


@pytest.mark.parametrize("name,text", [("e.jsonl", "\n\n"), ("e.json", "[]"), ("e.csv", "text\n")])
def test_empty_dataset(tmp_path, name, text):
    with pytest.raises(DataError, match="empty"):
        data.read_rows(_write(tmp_path, name, text))


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        data.read_rows(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="unknown dataset format"):
        data.read_rows(_write(tmp_path, "a.txt", "x"))


def test_holdout_without_eval_file(tmp_path):
    rows = "".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) + "\n" for i in range(50))
    s = data.load_splits(str(_write(tmp_path, "t.jsonl", rows)), None, eval_samples=8, seed=1)
    assert len(s.eval) == 5 and len(s.train) == 45  # at most a tenth is held out
    assert not {r.where for r in s.eval} & {r.where for r in s.train}


def test_pad_collator_masks_padding():
    torch = pytest.importorskip("torch")
    batch = data.PadCollator(0)(
        [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].dtype == torch.long and batch["attention_mask"].sum() == 4


def test_pad_collator_pads_to_a_multiple_when_asked():
    pytest.importorskip("torch")
    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = data.PadCollator(0, pad_to_multiple_of=4)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100], [8, -100, -100, -100]]
    assert batch["attention_mask"].sum() == 4
    assert data.PadCollator(0, pad_to_multiple_of=3)(rows)["input_ids"].shape == (2, 3)  # already a multiple


def test_pad_multiple_reads_sftconfig_as_trl_parses_it():
    trl = pytest.importorskip("trl")
    parse = trl.TrlParser((trl.SFTConfig,)).parse_args_into_dataclasses
    base = ["--output_dir", "/tmp/odin-pad", "--use_cpu", "true", "--bf16", "false"]
    (args,) = parse([*base, "--pad_to_multiple_of", "64"])
    assert data.pad_multiple(args) == 64
    (args,) = parse(base)  # TRL's default, "auto", pads only on Neuron
    assert data.pad_multiple(args) is None


@pytest.mark.slow
def test_tokenize_masks_prompts_for_each_format(tmp_path):
    """With the default model's real tokenizer: only the answer (and eos) carries labels."""
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from odin_slm.model import ModelError, convert_gguf, find_default_gguf

    try:
        tok = AutoTokenizer.from_pretrained(convert_gguf(find_default_gguf()))
    except ModelError as exc:
        pytest.skip(str(exc))
    chat = {"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi there"}]}
    rows = {
        "text": {"text": "plain text"},
        "prompt-completion": {"prompt": "Q: 2+2\nA:", "completion": " 4"},
        "messages": chat,
    }
    for fmt, row in rows.items():
        (ex,) = data.tokenize([data.Row(row, "t:1")], fmt, tok, max_length=64)
        learned = tok.decode([i for i, lab in zip(ex["input_ids"], ex["labels"], strict=True) if lab != -100])
        expected = {"text": "plain text", "prompt-completion": " 4", "messages": "hi there"}[fmt]
        assert learned.startswith(expected), (fmt, learned)
        assert tok.eos_token in learned or fmt == "messages" and "<|im_end|>" in learned, (fmt, learned)
    with pytest.raises(DataError, match="no answer token"):
        data.tokenize([data.Row(rows["prompt-completion"], "t:7")], "prompt-completion", tok, max_length=2)


@pytest.mark.parametrize(
    "name,text",
    [
        ("train.jsonl", '{"text": "a"}\n{"text": "b"}\n'),
        ("train.json", '[{"text": "a"},\n {"text": "b"}]'),
        ("train.csv", "text\na\nb\n"),
    ],
)
def test_a_byte_order_mark_is_read_as_datasets_reads_it(tmp_path, name, text):
    """Excel and Windows editors start UTF-8 files with a BOM; it used to break line 1 or the CSV header."""
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    rows = data.read_rows(path)
    assert data.validate(rows) == "text" and [r.data["text"] for r in rows] == ["a", "b"]
    assert rows[1].where.endswith(":2" if name != "train.csv" else ":3")


def _tiny_run(tmp_path) -> list[str]:
    """odin_slm.train flags for a few CPU steps of a tiny model on 8 prompt/completion rows."""
    pytest.importorskip("trl")
    from _hf_cache import rows, tiny_model, tiny_tokenizer

    model_dir = tmp_path / "model"
    tok = tiny_tokenizer()
    tiny_model(tok, 1).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data_file = _write(tmp_path, "rows.jsonl", "".join(json.dumps(r) + "\n" for r in rows(8)))
    return ["--model_name_or_path", str(model_dir), "--dataset_name", str(data_file),
            "--per_device_train_batch_size", "2", "--eval_samples", "0", "--save_strategy", "no", "--report_to", "none",
            "--disable_tqdm", "true", "--engine", "trl", "--use_peft", "false"]  # fmt: skip


def test_the_trainer_pads_to_sftconfigs_multiple(tmp_path, monkeypatch):
    """--pad_to_multiple_of reaches the batches the trainer trains on (it was ignored)."""
    from odin_slm import train

    argv = [*_tiny_run(tmp_path), "--max_steps", "2", "--output_dir", str(tmp_path / "out")]
    lengths = []
    call = data.PadCollator.__call__
    monkeypatch.setattr(
        data.PadCollator,
        "__call__",
        lambda self, f: lengths.append(call(self, f)["input_ids"].shape[1]) or call(self, f),
    )
    assert train.main([*argv, "--pad_to_multiple_of", "16"]) == 0
    assert lengths and all(n % 16 == 0 for n in lengths), lengths
    lengths.clear()
    assert train.main([*argv, "--output_dir", str(tmp_path / "out2")]) == 0
    assert lengths and any(n % 16 for n in lengths), lengths  # TRL's default: the longest row


def test_the_counting_collator_leaves_trls_padding_free_padding_out():
    """--packing with the levers: tune sets pad_to_multiple_of=64, and TRL pads the flattened row (no mask)."""
    pytest.importorskip("trl")
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    inner = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True, pad_to_multiple_of=64)
    counter = data.CountingCollator(inner)
    packed = [
        {"input_ids": [5, 6, 7, 8, 9], "labels": [-100, 6, 7, 8, 9], "seq_lengths": [2, 3]},
        {"input_ids": [1, 2, 3], "labels": [1, 2, 3], "seq_lengths": [3]},
    ]
    batch = counter(packed)
    assert batch["input_ids"].shape == (1, 64)
    counter.take(batch)
    assert counter.tokens == 8


def test_pad_collator_rounds_up_no_further_than_max_length():
    pytest.importorskip("torch")
    rows = [{"input_ids": [1] * 30, "labels": [1] * 30}, {"input_ids": [1] * 5, "labels": [1] * 5}]
    assert data.PadCollator(0, 64, max_length=32)(rows)["input_ids"].shape == (2, 32)
    assert data.PadCollator(0, 64, max_length=100)(rows)["input_ids"].shape == (2, 64)
    assert data.PadCollator(0, 64)(rows)["input_ids"].shape == (2, 64)


def test_dataloader_workers_count_the_same_tokens(tmp_path):
    """--dataloader_num_workers: the collator runs in worker processes, whose counts reached no one (0 tokens/s)."""
    from odin_slm import train

    argv = [*_tiny_run(tmp_path), "--max_steps", "3"]
    tokens = []
    for workers in ("0", "1"):
        out = tmp_path / f"out{workers}"
        assert train.main([*argv, "--output_dir", str(out), "--dataloader_num_workers", workers]) == 0
        tokens.append(json.loads((out / "metrics.json").read_text())["train_tokens"])
    assert tokens[0] > 0 and tokens[1] == tokens[0], tokens


def test_counts_travel_with_the_batch_and_are_taken_off_as_it_trains():
    pytest.importorskip("torch")
    counter = data.CountingCollator(data.PadCollator(0))
    rows = [{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = counter(rows)
    assert counter.tokens == 0 and batch[data.COUNT_KEY][0] == 4  # collated, not trained yet
    counter.take(batch)
    assert counter.tokens == 4 and data.COUNT_KEY not in batch
    counter.take(batch)  # taken once only
    assert counter.tokens == 4
    eval_batch = counter([{**r, "odin_eval": 1} for r in rows])
    assert data.COUNT_KEY not in eval_batch
