"""Records for names that moved: an older release offered `module.name`, today's release defines the
same name in another module of the package. Each record makes the old spelling resolve to today's
object itself (an alias, never a copy).

The table is `data/restore.json` ("moved"), written by `python tools/api_diff.py restore` from the API
diff (`docs/api-diff.md`) of the package top levels, trainer modules and argument modules.
"""

from __future__ import annotations

from odin_compat.records import REGISTRY, Record, findable, lazy_alias, lazy_export, released_after

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

# Lazy packages: a name is declared on them and resolves through its submodule on first use.
LAZY = ("transformers", "trl", "trl.trainer")
_TABLE: list[dict] = []


def table(section: str) -> list[dict]:
    """One section of restore.json (read once)."""
    if not _TABLE:
        import json
        from pathlib import Path

        # a plain file read: importlib.resources alone costs ~10 ms of start-up
        text = (Path(__file__).resolve().parent.parent / "data" / "restore.json").read_text(encoding="utf-8")
        _TABLE.append(json.loads(text))
    return _TABLE[0][section]


def record_id(lib: str, kind: str, where: str, name: str) -> str:
    rest = where.removeprefix(lib).strip(".")
    return "-".join(p for p in (lib.replace("_", "-"), kind, rest.replace(".", "-"), name) if p)


def _alias(target: str, name: str) -> object:
    def provide(module: ModuleType) -> None:
        lazy_alias(module, name, target)

    return provide


def relative(where: str, target: str) -> str:
    """`target` as the lazy package `where` imports it (`"." + entry`, relative to `where`):
    ("trl", "trl.trainer.x") -> "trainer.x"; ("trl.trainer", "trl.experimental.x") -> ".experimental.x"."""
    w, t = where.split("."), target.split(".")
    common = 0
    while common < min(len(w), len(t)) and w[common] == t[common]:
        common += 1
    return "." * (len(w) - common) + ".".join(t[common:])


def _lazy(target: str, name: str) -> object:
    def provide(module: ModuleType) -> None:
        lazy_export(module, name, relative(module.__name__, target))

    return provide


def _needed(lib: str, last: str, target: str) -> object:
    """Only on a release past the last one that had the name, and where today's home of the name exists
    (found on disk, nothing imported): a release in between may keep it elsewhere, or not at all."""
    after = released_after(lib, last)

    def needed(module: ModuleType) -> bool:
        if not after(module):
            return False
        home = _HOMES.get(target)
        if home is None:
            home = _HOMES[target] = findable(target)
        return home

    return needed


_HOMES: dict[str, bool] = {}  # target module -> findable: many moved names share one new home


for _row in table("moved"):
    _lib, _where, _name, _target = _row["lib"], _row["where"], _row["name"], _row["target"]
    # declared on the lazy package, also for a target elsewhere in the package (trl.trainer's CPOConfig
    # lives in trl.experimental.cpo): importing the package must not import the target
    _lazy_kind = _where in LAZY and _target.partition(".")[0] == _where.partition(".")[0]
    REGISTRY.add(
        Record(
            id=record_id(_lib, "moved", _where, _name),
            affects=f"{_lib}>{_row['last']}",  # what `needed` checks (plus the new home's presence)
            module=_where,
            name=_name,
            kind="lazy",  # resolved on first use, on a lazy package through its table, else lazy_alias
            fixes=f"ImportError: cannot import name '{_name}' from '{_where}'",
            works=f"{_lib}<={_row['last']}",
            breaks=f"{_lib}>={_row['gone_in']} (the same object lives in {_target})",
            upstream=f"{_lib} v{_row['gone_in']} {_target} (docs/api-diff.md: moved)",
            remove_when=f"callers import {_name} from {_target}",
            provide=(_lazy if _lazy_kind else _alias)(_target, _name),
            needed=_needed(_lib, _row["last"], _target),
            proof=("test_restored::test_moved_and_backported_names",),
        )
    )
