"""Datasets: reading files, validating rows (errors name file and line), tokenizing, the default task.

Supported sources: JSONL, JSON (a list of objects), CSV and Parquet files, a folder written by
``datasets.Dataset.save_to_disk``, and Hub dataset ids, read by ``datasets.load_dataset`` (with
``--dataset_config``, ``--dataset_train_split``/``--dataset_test_split`` and a revision) through
the Hugging Face cache. Supported row shapes, as in TRL:

- ``{"text": ...}``: language modelling on the whole text;
- ``{"prompt": ..., "completion": ...}``: loss on the completion only; with lists of messages
  for both (TRL's conversational prompt-completion), rendered by the chat template;
- ``{"messages": [{"role": ..., "content": ...}, ...]}``: rendered by the tokenizer's chat
  template, loss on every assistant turn (TRL's ``assistant_only_loss``).

odin tokenizes rows itself (prompt tokens get label -100) and hands SFTTrainer a tokenized
dataset with a padding collator: both engines and both stacks then see the very same tokens.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = ("text", "prompt-completion", "messages", "chat-prompt-completion")
CHAT_FORMATS = ("messages", "chat-prompt-completion")  # rendered by the chat template
IGNORE_INDEX = -100

# The default task: rewrite an ISO date as DD/MM/YYYY. Deterministic, with an exact answer;
# the base SmolLM2-135M-Instruct gets almost none right, a few dozen LoRA steps teach it.
DEFAULT_SYSTEM = "Answer with the result only."
DEFAULT_TRAIN_FILE = "dates_train.jsonl"
DEFAULT_EVAL_FILE = "dates_eval.jsonl"


class DataError(Exception):
    """Bad input data; the message names the file and line and says what to do."""


@dataclass
class Row:
    data: dict
    where: str  # "file:line" (or "folder:row N") for error messages


def default_data_dir() -> Path:
    return Path(__file__).parent / "data"


def make_default_rows(n: int, seed: int) -> list[dict]:
    """Generate the default date-rewriting task deterministically (chat ``messages`` rows)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        y, m, d = rng.randint(1900, 2099), rng.randint(1, 12), rng.randint(1, 28)
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": DEFAULT_SYSTEM},
                    {"role": "user", "content": f"Rewrite {y}-{m:02d}-{d:02d} as DD/MM/YYYY."},
                    {"role": "assistant", "content": f"{d:02d}/{m:02d}/{y}"},
                ]
            }
        )
    return rows


def write_default_files(folder: Path) -> None:
    """Regenerate the shipped default dataset (train and a disjoint eval split)."""
    train = make_default_rows(1024, seed=1)
    seen = {r["messages"][1]["content"] for r in train}
    eval_rows = [r for r in make_default_rows(256, seed=2) if r["messages"][1]["content"] not in seen][:64]
    for name, rows in ((DEFAULT_TRAIN_FILE, train), (DEFAULT_EVAL_FILE, eval_rows)):
        with open(folder / name, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")


# ----------------------------------------------------------------------------- reading


def read_rows(path: str | Path) -> list[Row]:
    """Read a dataset file or folder into rows that remember where they came from."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(
            f"Dataset not found: {path}\n  Pass a .jsonl, .json, .csv or .parquet file, a datasets folder "
            "or a Hub dataset id (org/name)."
        )
    if p.is_dir():
        rows = _read_disk(p)
    elif p.suffix == ".parquet":
        rows = _read_parquet(p)
    elif p.suffix == ".jsonl":
        rows = _read_jsonl(p)
    elif p.suffix == ".json":
        rows = _read_json(p)
    elif p.suffix == ".csv":
        rows = _read_csv(p)
    else:
        raise DataError(
            f"{p}: unknown dataset format {p.suffix!r}; use .jsonl, .json, .csv, .parquet or a datasets folder."
        )
    if not rows:
        raise DataError(f"{p}: the dataset is empty; it needs at least one row.")
    return rows


def _decode(p: Path, raw: bytes, first_line: int = 1) -> str:
    """UTF-8 text of a file (or of its line ``first_line``); a bad byte is reported by line and column.

    A byte-order mark at the start of the file (Excel and Windows editors write one) is dropped,
    as datasets' readers drop it.
    """
    if first_line == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + raw.count(b"\n", 0, exc.start)
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise DataError(
            f"{p}:{line}: byte 0x{raw[exc.start]:02x} at column {column} is not UTF-8; save the file as UTF-8."
        ) from None


def _read_jsonl(p: Path) -> list[Row]:
    rows = []
    with open(p, "rb") as fh:  # bytes, so that a non-UTF-8 byte is reported with its line
        for lineno, raw in enumerate(fh, 1):
            line = _decode(p, raw, lineno)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
            rows.append(Row(obj, f"{p}:{lineno}"))
    return rows


def _data_list_start(text: str) -> int:
    """Where the data list opens in valid JSON text: at the top, or as the value of the top-level "data"."""
    decoder, space = json.JSONDecoder(), json.decoder.WHITESPACE
    idx = space.match(text, 0).end()
    if text[idx] == "[":
        return idx
    start, idx = idx, space.match(text, idx + 1).end()  # inside {...}: step over each member
    while text[idx] != "}":
        key, idx = decoder.raw_decode(text, idx)
        idx = space.match(text, space.match(text, idx).end() + 1).end()  # past ':'
        if key == "data":
            start = idx  # the last one wins, as in json.loads
        _, idx = decoder.raw_decode(text, idx)
        idx = space.match(text, idx).end()
        if text[idx] == ",":
            idx = space.match(text, idx + 1).end()
    return start


def _read_json(p: Path) -> list[Row]:
    text = _decode(p, p.read_bytes())
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = (
            " A file with one object per line is JSON Lines: name it .jsonl."
            if exc.msg == "Extra data"
            else ""
        )
        raise DataError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg}).{hint}") from None
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj = obj["data"]
    if not isinstance(obj, list):
        raise DataError(f'{p}: a .json dataset must be a list of objects (or {{"data": [...]}}).')
    # Find the line each top-level item starts on, so errors can point at it.
    decoder, lines, rows = json.JSONDecoder(), [], []
    idx = _data_list_start(text) + 1
    for _ in obj:
        while text[idx] in " \t\r\n,":
            idx += 1
        lines.append(text.count("\n", 0, idx) + 1)
        _, idx = decoder.raw_decode(text, idx)
    for item, lineno in zip(obj, lines, strict=True):
        rows.append(Row(item, f"{p}:{lineno}"))
    return rows


def _read_csv(p: Path) -> list[Row]:
    rows = []
    reader = csv.DictReader(io.StringIO(_decode(p, p.read_bytes()), newline=""))
    for rec in reader:
        if None in rec:
            raise DataError(f"{p}:{reader.line_num}: more fields than the header has.")
        rows.append(Row(dict(rec), f"{p}:{reader.line_num}"))
    return rows


def _read_parquet(p: Path) -> list[Row]:
    import pyarrow.parquet as pq  # a dependency of datasets

    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises its own types for a damaged file
        raise DataError(f"{p}: not a readable Parquet file ({exc}).") from None
    return [Row(r, f"{p}:row {i}") for i, r in enumerate(table.to_pylist())]


def _load_disk(p: Path) -> Any:
    import datasets

    try:
        return datasets.load_from_disk(str(p))
    except Exception as exc:  # datasets raises several types for a non-dataset folder
        raise DataError(f"{p}: not a folder written by datasets' save_to_disk ({exc}).") from None


def _read_disk(p: Path) -> list[Row]:
    import datasets

    ds = _load_disk(p)
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{p}: a DatasetDict needs a 'train' split (has {list(ds)}).")
        ds = ds["train"]
    return [Row(dict(r), f"{p}:row {i}") for i, r in enumerate(ds)]


def _split_rows(dd: Any, name: str, split: str) -> list[Row]:
    if split not in dd:
        raise DataError(f"{name}: no split {split!r} (it has {', '.join(dd)}); see --dataset_train_split.")
    return [Row(dict(r), f"{name}[{split}]:row {i}") for i, r in enumerate(dd[split])]


DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt", ".arrow")


def is_hub_dataset(name: str) -> bool:
    """A Hub dataset id ('org/name'): no local path of that name, and not a data file name."""
    from odin_slm.model import is_hub_id

    return not name.lower().endswith(DATA_SUFFIXES) and is_hub_id(name)


def load_hub(repo_id: str, config: str | None, revision: str | None) -> Any:
    """All splits of a Hub dataset, through ``datasets.load_dataset`` and the HF cache.

    datasets in offline mode (or without a network) only finds datasets that it prepared before;
    a dataset fetched with ``hf download --repo-type dataset`` sits in the hub cache instead, so
    that snapshot is loaded as a local folder (its README's configs still apply).
    """
    import datasets

    from odin_slm.model import hub_miss_message

    try:
        return datasets.load_dataset(repo_id, name=config, revision=revision)
    except ConnectionError as exc:
        error: BaseException = exc
    except ValueError as exc:  # an unknown config name: the message lists the available ones
        raise DataError(f"{repo_id}: {exc}") from None
    except FileNotFoundError as exc:  # DatasetNotFoundError: no such repo, or no access
        raise DataError(hub_miss_message(repo_id, revision, exc, repo_type="dataset")) from None
    folder = _cached_snapshot(repo_id, revision)
    if folder is None:
        raise DataError(hub_miss_message(repo_id, revision, error, repo_type="dataset"))
    try:
        return datasets.load_dataset(folder, name=config)
    except ValueError as exc:
        raise DataError(f"{repo_id}: {exc}") from None


def _cached_snapshot(repo_id: str, revision: str | None) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, repo_type="dataset", revision=revision, local_files_only=True)
    except Exception:  # LocalEntryNotFoundError and kin (their module moved between releases)
        return None


def read_source(
    name: str,
    *,
    config: str | None = None,
    split: str = "train",
    test_split: str | None = None,
    revision: str | None = None,
) -> tuple[list[Row], list[Row] | None]:
    """The train rows of a file, folder or Hub dataset, and its ``test_split`` rows when it has them."""
    p = Path(name).expanduser()
    if p.is_dir() and (p / "dataset_dict.json").is_file():  # save_to_disk of a DatasetDict
        dd = _load_disk(p)
    elif p.exists():
        return read_rows(p), None
    elif is_hub_dataset(name):
        dd = load_hub(name, config, revision)
    else:
        return read_rows(p), None  # "not found", naming the formats
    rows = _split_rows(dd, name, split)
    test = _split_rows(dd, name, test_split) if test_split and test_split in dd else None
    if not rows:
        raise DataError(f"{name}[{split}]: the dataset is empty; it needs at least one row.")
    return rows, test


# ----------------------------------------------------------------------------- validation


def row_format(row: Row) -> str:
    """Which of FORMATS a row is; raises DataError naming the row when it is none of them."""
    d = row.data
    if not isinstance(d, dict):
        raise DataError(f"{row.where}: a row must be an object, got {type(d).__name__}.")
    if "messages" in d:
        msgs = d["messages"]
        if isinstance(msgs, str):  # CSV cells hold JSON text
            try:
                msgs = d["messages"] = json.loads(msgs)
            except json.JSONDecodeError:
                raise DataError(f"{row.where}: 'messages' is not a JSON list.") from None
        if not isinstance(msgs, list) or not msgs:
            raise DataError(f"{row.where}: 'messages' must be a non-empty list of {{role, content}}.")
        for i, m in enumerate(msgs):
            if (
                not isinstance(m, dict)
                or not isinstance(m.get("role"), str)
                or not isinstance(m.get("content"), str)
            ):
                raise DataError(f"{row.where}: messages[{i}] must have string 'role' and 'content'.")
        if msgs[-1]["role"] != "assistant":
            raise DataError(f"{row.where}: the last message must be the assistant's answer to learn.")
        return "messages"
    if isinstance(d.get("prompt"), list) or isinstance(d.get("completion"), list):
        for key in ("prompt", "completion"):
            _check_chat(d.get(key), f"{row.where}: '{key}'")
        if d["completion"][-1]["role"] != "assistant":
            raise DataError(f"{row.where}: the completion must end with the assistant's answer to learn.")
        return "chat-prompt-completion"
    if "prompt" in d or "completion" in d:
        for key in ("prompt", "completion"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise DataError(f"{row.where}: '{key}' must be a non-empty string.")
        return "prompt-completion"
    if "text" in d:
        if not isinstance(d["text"], str) or not d["text"].strip():
            raise DataError(f"{row.where}: 'text' must be a non-empty string.")
        return "text"
    raise DataError(
        f"{row.where}: the row has none of the fields 'text', 'prompt'+'completion' or 'messages' "
        f"(it has {sorted(d)})."
    )


def _check_chat(msgs: Any, what: str) -> None:
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{what} must be a non-empty list of {{role, content}} messages.")
    for i, m in enumerate(msgs):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise DataError(f"{what}[{i}] must have string 'role' and 'content'.")


def validate(rows: list[Row]) -> str:
    """Check every row; all rows must share one format. Returns the format."""
    fmt = None
    for row in rows:
        f = row_format(row)
        if fmt is None:
            fmt = f
        elif f != fmt:
            raise DataError(
                f"{row.where}: row is {f!r} but earlier rows are {fmt!r}; use one format per file."
            )
    assert fmt is not None
    return fmt


# ----------------------------------------------------------------------------- tokenizing


def split_prompt(row: dict, fmt: str, tokenizer: Any) -> tuple[str, str]:
    """(prompt text, target text) as strings; the model sees prompt+target, learns target."""
    if fmt in CHAT_FORMATS:
        msgs = row["messages"] if fmt == "messages" else row["prompt"] + row["completion"]
        cut = len(msgs) - 1 if fmt == "messages" else len(row["prompt"])
        if not getattr(tokenizer, "chat_template", None):
            raise DataError("Chat rows need a tokenizer with a chat template; this model has none.")
        prompt = tokenizer.apply_chat_template(msgs[:cut], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(msgs, tokenize=False)
        if not full.startswith(prompt):
            raise DataError("The chat template renders the prompt differently inside the full chat.")
        return prompt, full[len(prompt) :]
    if fmt == "prompt-completion":
        return row["prompt"], row["completion"]
    return "", row["text"]


def chat_segments(msgs: list[dict], tokenizer: Any) -> list[tuple[str, bool]]:
    """The rendered chat cut into (text, trained) pieces: every assistant turn is trained.

    Each turn's span is found by rendering the chat up to it, so the template must render a chat's
    beginning the same way inside the whole chat (true of ChatML and most templates).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("'messages' rows need a tokenizer with a chat template; this model has none.")
    full = tokenizer.apply_chat_template(msgs, tokenize=False)
    pieces, pos = [], 0
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        prompt = (
            tokenizer.apply_chat_template(msgs[:i], tokenize=False, add_generation_prompt=True) if i else ""
        )
        upto = tokenizer.apply_chat_template(msgs[: i + 1], tokenize=False)
        start = len(prompt)
        if not (full.startswith(upto) and upto.startswith(prompt)) or start < pos:
            raise DataError("The chat template renders the prompt differently inside the full chat.")
        pieces += [(full[pos:start], False), (full[start : len(upto)], True)]
        pos = len(upto)
    if pos < len(full):
        pieces.append((full[pos:], False))
    return pieces


def reference(row: dict, fmt: str) -> str | None:
    """The exact answer a generation is scored against (None for plain text rows)."""
    if fmt == "messages":
        return row["messages"][-1]["content"]
    if fmt == "chat-prompt-completion":
        return row["completion"][-1]["content"]
    if fmt == "prompt-completion":
        return row["completion"]
    return None


def tokenize(rows: list[Row], fmt: str, tokenizer: Any, max_length: int | None) -> list[dict]:
    """Rows -> {"input_ids", "labels"}; prompt tokens are masked out of the loss."""
    out = []
    eos = tokenizer.eos_token_id
    for row in rows:
        if fmt in CHAT_FORMATS:  # the template already holds the special tokens
            ids, labels = [], []
            if fmt == "messages":
                pieces = chat_segments(row.data["messages"], tokenizer)
            else:  # TRL's conversational prompt-completion: the loss is on the completion only
                pieces = list(zip(split_prompt(row.data, fmt, tokenizer), (False, True), strict=True))
            for text, trained in pieces:
                piece = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
                ids += piece
                labels += piece if trained else [IGNORE_INDEX] * len(piece)
        else:
            prompt, target = split_prompt(row.data, fmt, tokenizer)
            p_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"] if prompt else []
            if not prompt and tokenizer.bos_token_id is not None:
                p_ids = tokenizer("", add_special_tokens=True)["input_ids"]
            t_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
            if eos is not None:
                t_ids = t_ids + [eos]
            ids, labels = p_ids + t_ids, [IGNORE_INDEX] * len(p_ids) + t_ids
        ids = ids[:max_length] if max_length else ids
        labels = labels[: len(ids)]
        if all(x == IGNORE_INDEX for x in labels):
            raise DataError(
                f"{row.where}: after truncation to max_length={max_length} no answer token is left; "
                "raise --max_length or shorten the prompt."
            )
        out.append({"input_ids": ids, "labels": labels})
    return out


class PadCollator:
    """Right-pad input_ids/labels/attention_mask to the longest row of the batch, rounded up to a multiple
    of ``pad_to_multiple_of`` when it is set (SFTConfig's option of that name: fewer distinct shapes, so
    compiled code is reused), but never past ``max_length`` (the longest a row can be: one more shape at most,
    where rounding up would pad rows of ``max_length`` further, e.g. 32 up to 64)."""

    def __init__(
        self, pad_token_id: int, pad_to_multiple_of: int | None = None, max_length: int | None = None
    ) -> None:
        self.pad = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.max_length = max_length

    def __call__(self, features: list[dict]) -> dict:
        import torch

        n = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            rounded = -(-n // self.pad_to_multiple_of) * self.pad_to_multiple_of
            n = min(rounded, max(n, self.max_length)) if self.max_length else rounded
        ids = torch.full((len(features), n), self.pad, dtype=torch.long)
        labels = torch.full((len(features), n), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), n), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, :k] = torch.as_tensor(f["input_ids"])
            labels[i, :k] = torch.as_tensor(f["labels"])
            mask[i, :k] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pad_multiple(args: Any) -> int | None:
    """SFTConfig's ``pad_to_multiple_of`` as a number, or None: TRL's ``"auto"`` pads only on Neuron
    (AWS Trainium), where odin does not run."""
    value = getattr(args, "pad_to_multiple_of", None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# ----------------------------------------------------------------------------- loading


@dataclass
class Splits:
    train: list[Row]
    eval: list[Row]
    fmt: str
    source: str


def load_splits(
    train_path: str | None,
    eval_path: str | None,
    eval_samples: int,
    seed: int,
    *,
    config: str | None = None,
    train_split: str = "train",
    test_split: str | None = "test",
    revision: str | None = None,
) -> Splits:
    """Train and eval rows. Eval: the eval file, else the dataset's ``test_split``, else the last
    ``eval_samples`` rows of a seeded shuffle are held out."""
    if not train_path:
        folder = default_data_dir()
        train_path = str(folder / DEFAULT_TRAIN_FILE)
        eval_path = eval_path or str(folder / DEFAULT_EVAL_FILE)
    train, test = read_source(
        train_path, config=config, split=train_split, test_split=test_split, revision=revision
    )
    fmt = validate(train)
    if eval_path:
        ev = read_rows(eval_path)
        if validate(ev) != fmt:
            raise DataError(f"{eval_path}: its rows are not in the train file's format ({fmt}).")
    elif test:
        ev = test
        if validate(ev) != fmt:
            raise DataError(
                f"{train_path}[{test_split}]: its rows are not in the train split's format ({fmt})."
            )
    elif eval_samples > 0 and fmt != "text":
        if len(train) < 2:
            raise DataError(
                f"{train_path}: too few rows to hold out an eval split; pass --eval_dataset_name."
            )
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        k = min(eval_samples, max(1, len(train) // 10))
        held = set(order[-k:])
        ev = [train[i] for i in sorted(held)]
        train = [r for i, r in enumerate(train) if i not in held]
    else:
        ev = []
    return Splits(train, ev[:eval_samples] if eval_samples else [], fmt, train_path)


class CountingCollator:
    """Counts the real (non-padding) tokens that go through training, for tokens/s, and digests
    them, so that ranks can show they trained on different shards.

    ``inner`` pads the batch: odin's :class:`PadCollator`, or TRL's own collator when TRL packs the
    rows (a padding-free batch has no attention mask: every token is real).
    """

    def __init__(self, inner: Any) -> None:
        from odin_slm.distributed import new_digest

        self.inner, self.tokens = inner, 0
        self.digest = new_digest()

    def __call__(self, features: list[dict]) -> dict:
        batch = self.inner(features)
        if features and features[0].get("odin_eval"):
            return batch
        # The rows' own lengths: a padding-free batch (TRL's packing) has no attention mask, and TRL pads it
        # to ``pad_to_multiple_of`` with pad tokens that are not trained on.
        # The counts travel with the batch, and the trainer adds them (``take``) as the batch trains: a
        # DataLoader worker's own counts would never reach the main process (--dataloader_num_workers), and
        # a batch collated ahead that never trains (the loader reads one ahead) is not counted.
        batch[COUNT_KEY] = (sum(len(f["input_ids"]) for f in features), batch["input_ids"].numpy().tobytes())
        return batch

    def take(self, batch: dict) -> None:
        """Add the counts of ``batch``, which is about to train, and remove them from it (the model takes
        no such argument)."""
        count = batch.pop(COUNT_KEY, None)
        if count is not None:
            self.tokens += count[0]
            self.digest.update(count[1])


# The key under which a collated training batch carries its counts to the training step.
COUNT_KEY = "odin_counted"
