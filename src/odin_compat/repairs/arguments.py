"""Records for fields that releases removed from (or renamed in) the argument dataclasses:
`TrainingArguments`, `Seq2SeqTrainingArguments`, trl's `*Config` and `*ScriptArguments`.

One record per dataclass adapts its `__init__` and, through `transformers-hfargparser-removed-flags`,
its command-line flags:
- a renamed field is passed on under its new name (both at once raise ValueError);
- a removed field is accepted and kept on the instance as an attribute (a script that reads it back
  keeps working). Today's release has no such option, so a value other than the default of the last
  release that had it cannot have its old effect: odin warns once, naming that release. As a flag it is
  dropped, with a warning that says so and names the last release that had it.

Fields with a hand-written record (`evaluation_strategy`, `warmup_ratio`, `no_cuda`, trl's
`max_seq_length`, ...) are not in the table: those records translate the meaning.
The table is `data/restore.json` ("fields"), from `python tools/api_diff.py restore`.
"""

from __future__ import annotations

from odin_compat.records import REGISTRY, Record, accepting, adapted, kwarg_adapter, released_after, warn_once
from odin_compat.repairs.moved import table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

# Where each dataclass is defined in today's releases.
HOMES = {
    "TrainingArguments": "transformers.training_args",
    "Seq2SeqTrainingArguments": "transformers.training_args_seq2seq",
    "DPOConfig": "trl.trainer.dpo_config",
    "GRPOConfig": "trl.trainer.grpo_config",
    "KTOConfig": "trl.trainer.kto_config",
    "RLOOConfig": "trl.trainer.rloo_config",
    "RewardConfig": "trl.trainer.reward_config",
    "SFTConfig": "trl.trainer.sft_config",
    "ModelConfig": "trl.trainer.model_config",
    "ScriptArguments": "trl.scripts.utils",
    "GRPOScriptArguments": "trl.scripts.grpo",
    "RLOOScriptArguments": "trl.scripts.rloo",
}
_MISSING = object()


def _fields() -> dict[str, dict[str, dict]]:
    """dataclass -> field -> its row; Seq2SeqTrainingArguments inherits TrainingArguments' adapter."""
    out: dict[str, dict[str, dict]] = {}
    for row in table("fields"):
        out.setdefault(row["where"], {})[row["name"]] = row
    seq2seq = out.pop("Seq2SeqTrainingArguments", {})
    for name, row in seq2seq.items():
        out.setdefault("TrainingArguments", {}).setdefault(name, row)
    return out


def _gone(rows: dict[str, dict], module: ModuleType) -> dict[str, dict]:
    """The rows this release is past: a field that came after it was never its own to accept."""
    return {n: r for n, r in rows.items() if released_after(r["lib"], r["last"])(module)}


def _adapter(cls_name: str, rows: dict[str, dict], record_id: str) -> object:
    def adapt(args: tuple, kwargs: dict) -> tuple:
        for name in [k for k in kwargs if k in rows]:
            row = rows[name]
            if row["target"]:
                if row["target"] in kwargs:
                    raise ValueError(
                        f"Both `{name}` and `{row['target']}` are set; pass only `{row['target']}`."
                    )
                kwargs[row["target"]] = kwargs.pop(name)
                warn_once(f"{record_id}:{name}", f"`{name}` was renamed `{row['target']}` in {row['where']} "
                          f"({row['lib']} {row['gone_in']}); odin_compat passed it as `{row['target']}`.")  # fmt: skip
                continue
            value = kwargs.pop(name)
            if args:  # keep it readable on the instance, as the release that had the field did
                vars(args[0])[name] = value
            if value != row["default"]:
                warn_once(
                    f"{record_id}:{name}",
                    f"`{name}` was removed from {row['where']} after {row['lib']} {row['last']} and has no effect "
                    f"in this release; odin_compat accepted `{name}={value!r}` and kept it as an attribute.",
                    UserWarning,
                )
        return args, kwargs

    return adapt


def _provide(cls_name: str, rows: dict[str, dict], record_id: str) -> object:
    def provide(module: ModuleType) -> object:
        func = getattr(module, cls_name).__init__
        takes = accepting(func)
        # upstream's own fields stay upstream's
        gone = {n: r for n, r in _gone(rows, module).items() if not takes(n)}
        return kwarg_adapter(func, _adapter(cls_name, gone, record_id), record_id)

    return provide


def _needed(cls_name: str, rows: dict[str, dict], record_id: str) -> object:
    def needed(module: ModuleType) -> bool:
        func = getattr(module, cls_name).__init__
        if adapted(func, record_id):
            return False
        takes = accepting(func)
        return any(not takes(n) for n in _gone(rows, module))

    return needed


def _flag(row: dict) -> object:
    target = row["target"]
    return (lambda v, g: ["--" + target, str(v)]) if target else (lambda v, g: [])


def _register_flags(cls_name: str, rows: dict[str, dict]) -> None:
    from odin_compat.repairs.transformers import FLAG_LAST, FLAG_SINCE, FLAGS, NO_REPLACEMENT

    for name, row in rows.items():
        takes_value = row["annotation"] not in ("bool", "Optional[bool]", "bool | None")
        # owner: the dataclass that dropped it (the parser translates it only for dataclasses derived
        # from that one); since: the release of its library from which the flag is gone
        if name not in FLAGS:
            FLAGS[name] = (cls_name, takes_value, _flag(row))
            FLAG_SINCE[name] = (row["lib"], row["gone_in"])
            FLAG_LAST[name] = row["last"]
            if not row["target"]:
                NO_REPLACEMENT.add(name)


for _cls, _rows in sorted(_fields().items()):
    _home = HOMES[_cls]
    _lib = _home.partition(".")[0]
    _id = f"{_lib}-{_cls.lower()}-removed-fields"
    _names = sorted(_rows)
    _last = max((r["last"] for r in _rows.values()), key=lambda v: tuple(int(x) for x in v.split(".")))
    _first_gone = min(
        (r["gone_in"] for r in _rows.values()), key=lambda v: tuple(int(x) for x in v.split("."))
    )
    REGISTRY.add(
        Record(
            id=_id,
            affects=f"{_lib}>={_first_gone}",
            module=_home,
            name=f"{_cls}.__init__",
            kind="kwarg",
            fixes=f"TypeError: {_cls}.__init__() got an unexpected keyword argument: one of "
            + ", ".join(f"'{n}'" for n in _names)
            + " (also as command-line flags '--<name>')",
            works=f"{_lib}<={_last} (each field up to the release listed in docs/api-diff.md)",
            breaks=f"{_lib}>={_first_gone} (each field from the release after its last)",
            upstream="; ".join(
                f"{n}: {_lib} v{r['last']}" + (f" -> {r['target']}" if r["target"] else "")
                for n, r in sorted(_rows.items())
            ),
            remove_when="callers stop passing the removed fields",
            provide=_provide(_cls, _rows, _id),
            proof=("test_restored::test_removed_fields",),
            needed=_needed(_cls, _rows, _id),
        )
    )
    _register_flags(_cls, _rows)
