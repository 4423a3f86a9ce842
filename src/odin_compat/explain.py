"""Explain an error caused by something a newer release removed: which release dropped it, and what
replaced it, from the API diff that ships with odin (`odin_compat/data/api_diff.json`).

`explain(exc)` returns one sentence, or None when the error is not about a known removal.
`install()` chains a `sys.excepthook` that adds that sentence as a note to uncaught errors.
Nothing here is imported by `import odin_compat`; the data is read on the first explanation only.
"""

from __future__ import annotations

import re
import sys

_DATA: list[dict] = []
_PATTERNS = (
    ("name", re.compile(r"cannot import name '(?P<name>[\w.]+)' from '(?P<where>[\w.]+)'")),
    ("module", re.compile(r"No module named '(?P<where>[\w.]+)'")),
    ("keyword", re.compile(r"(?P<where>[\w.]+)\(\) got an unexpected keyword argument '(?P<name>\w+)'")),
    # Trainer.train's own check of its **kwargs: "train() got unexpected keyword arguments: model_path."
    ("keywords", re.compile(r"(?P<where>[\w.]+)\(\) got unexpected keyword arguments: (?P<names>[\w, ]+)")),
    # generate() hands keywords it does not know to the model, and refuses those the model does not take
    (
        "model_kwargs",
        re.compile(r"The following `model_kwargs` are not used by the model: \[(?P<names>[^\]]*)\]"),
    ),
    ("field", re.compile(r"'(?P<where>\w+)' object has no attribute '(?P<name>\w+)'")),
    # a plain module's message quotes both; transformers' lazy module quotes neither
    ("attribute", re.compile(r"module '?(?P<where>[\w.]+)'? has no attribute '?(?P<name>\w+)'?")),
    ("flag", re.compile(r"not used by the HfArgumentParser: \[(?P<names>[^\]]*)\]")),
)
_WHY = {
    "moved": "it now lives in `{target}`",
    "renamed": "its replacement is `{target}`",
    "removed": "{lib} {today} has no replacement for it",
    "semantics-gone": "that backend (TensorFlow / Flax / JAX) is no longer supported: use the PyTorch class",
}


# Keywords whose feature today's release no longer has (no faithful adapter exists), with what replaced it,
# from the source of the last release that took each and of today's. tools/api_diff.py classifies these
# findings "semantics gone" from this table. (library, callable, keyword) -> the replacement.
GONE_KEYWORDS: dict[tuple[str, str, str], str] = {
    ("transformers", "GenerationMixin.generate", "use_model_defaults"): (
        "transformers 5 always fills the unset values of a passed `generation_config` from the model's "
        "`generation_config` (there is no switch); set the values you want on the config"
    ),
    **{
        ("trl", f"{cls}.__init__", "model_init"): (
            "today's trainer takes `model` (an instance, or a model id loaded with `args.model_init_kwargs`) and "
            "passes no `model_init` to transformers' Trainer, so there is no `hyperparameter_search`"
        )
        for cls in ("DPOTrainer", "KTOTrainer", "RewardTrainer", "SFTTrainer")
    },
    ("trl", "DPOTrainer.__init__", "optimizer_cls_and_kwargs"): (
        "today's DPOTrainer passes no `optimizer_cls_and_kwargs` to transformers' Trainer: build the optimizer "
        "and pass `optimizers=(optimizer, None)`"
    ),
    ("trl", "DPOTrainer.__init__", "preprocess_logits_for_metrics"): (
        "the old DPOTrainer gave it the chosen/rejected logit means of its own prediction_step; today's passes "
        "none to transformers' Trainer (its prediction_step returns the model's logits): use `compute_metrics`"
    ),
    ("trl", "KTOTrainer.__init__", "preprocess_logits_for_metrics"): (
        "the old KTOTrainer gave it the chosen/rejected logit sums of its own prediction_step; today's passes "
        "none to transformers' Trainer (its prediction_step returns the model's logits): use `compute_metrics`"
    ),
    **{
        ("trl", "KTOTrainer.__init__", name): (
            "today's KTOTrainer makes its own frozen `ref` adapter (a copy of `default`) for the reference "
            "log-probs and reads no adapter names"
        )
        for name in ("model_adapter_name", "ref_adapter_name")
    },
    ("trl", "SFTTrainer.__init__", "infinite"): (
        "trl 0.12 deprecated it for `TrainingArguments.max_steps` / `num_train_epochs`, which set the "
        "training length"
    ),
}


def _data() -> dict:
    if not _DATA:
        import json
        from importlib import resources

        text = resources.files("odin_compat").joinpath("data", "api_diff.json").read_text(encoding="utf-8")
        _DATA.append(json.loads(text))
    return _DATA[0]


def _find(kind: str, where: str, name: str) -> tuple[str, list] | None:
    """(library, finding row) for a finding of `kind` at `where`.

    Names and modules match their module's full dotted path only, so a script's own module that
    happens to share a last part with a library's (`utils`) is never explained. Keywords and fields
    name a callable or class as the error message does ("DPOTrainer.__init__" -> "DPOTrainer",
    "train"), so they match the finding's qualified name or its last parts.
    """
    libraries = _data()["libraries"]
    for lib, lib_data in libraries.items():
        by_where = lib_data["findings"].get(kind, {})
        for key, items in by_where.items():
            if kind in ("name", "module"):
                hit = key == where
            else:
                hit = key == where or key.rpartition(".")[0] == where or key.endswith("." + where)
            if hit:
                for row in items:
                    if row[0] == name:
                        return lib, [key, *row]
    return None


def _sentence(kind: str, lib: str, row: list) -> str:
    where, name, cls, target, _first, last, gone_in = row
    releases = _data()["libraries"][lib]["releases"]
    thing = f"`{where}`" if kind == "module" else f"`{name}` ({kind} of `{where}`)"
    why = GONE_KEYWORDS.get((lib, where, name)) if kind == "keyword" else None
    why = why or _WHY[cls].format(target=target, lib=lib, today=releases[-1])
    return (
        f"odin_compat: {thing} was removed from {lib} after {releases[last]} "
        f"({releases[gone_in]} lacks it); {why}."
    )


def _explain_one(message: str) -> str | None:
    for kind, pattern in _PATTERNS:
        match = pattern.search(message)
        if not match:
            continue
        if kind == "flag":
            for flag in re.findall(r"'--(\w+)'", match["names"]):
                for cls in ("TrainingArguments", "Seq2SeqTrainingArguments", "SFTConfig", "DPOConfig"):
                    found = _find("field", cls, flag)
                    if found:
                        return _sentence("field", *found)
            return None
        if kind == "module":
            parts = match["where"].split(".")
            for end in range(len(parts), 1, -1):  # the module, else its nearest removed parent
                found = _find("module", ".".join(parts[:end]), "")
                if found:
                    return _sentence("module", *found)
            return None
        if kind == "model_kwargs":
            for name in re.findall(r"'(\w+)'", match["names"]):
                found = _find("keyword", "generate", name)
                if found:
                    return _sentence("keyword", *found)
            return None
        where = match["where"].removesuffix(".__init__")
        if kind == "keywords":
            for name in re.findall(r"\w+", match["names"]):
                found = _find("keyword", where, name)
                if found:
                    return _sentence("keyword", *found)
            return None
        if kind in ("name", "attribute"):  # a name of a module, or a removed submodule of it
            found = _find("name", where, match["name"])
            if found:
                return _sentence("name", *found)
            found = _find("module", f"{where}.{match['name']}", "")
            return _sentence("module", *found) if found else None
        found = _find(kind, where, match["name"])
        if found is None and kind == "keyword":  # a dataclass's keyword is one of its fields
            kind, found = "field", _find("field", where, match["name"])
        return _sentence(kind, *found) if found else None
    return None


def explain(exc: BaseException) -> str | None:
    """One sentence on the removal behind `exc` (or behind an error it was raised from), or None."""
    try:
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            sentence = _explain_one(str(current))
            if sentence:
                return sentence
            current = current.__cause__ or current.__context__
    except Exception:  # an explanation must never raise
        return None
    return None


def add_note(exc: BaseException) -> str | None:
    """Add `explain(exc)` to `exc` as a note (Python 3.11+); returns the sentence, or None."""
    note = explain(exc)
    if note and hasattr(exc, "add_note") and note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)
    return note


def install() -> None:
    """Chain a `sys.excepthook` that notes `explain(exc)` on uncaught errors (once per process).

    `import odin_compat` does this itself; this module is imported only when an error is uncaught.
    """
    previous = sys.excepthook
    if getattr(previous, "__odin_explain__", False):
        return

    def excepthook(kind: type[BaseException], exc: BaseException, tb: object) -> None:
        note = add_note(exc)
        previous(kind, exc, tb)
        if note and not hasattr(exc, "add_note"):  # Python 3.10: no notes, say it after the traceback
            sys.stderr.write(note + "\n")

    excepthook.__odin_explain__ = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook
