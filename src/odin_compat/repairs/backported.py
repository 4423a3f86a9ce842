"""Records for self-contained names that a release removed: a faithful backport, the verbatim source of
the last release listed that had it (same members, defaults, signature and docstring).

Self-contained: the definition, and each definition of its module that it uses and today's release
lacks, read only the standard library, torch, numpy and names today's releases still offer
(`tools/api_diff.py`, `backport_bundle`). The source and the imports it needs are `data/restore.json`
("backports"); each record links the upstream file of that release.

Every backport is built on first use: on a lazy package (`transformers`, `trl`, `trl.trainer`) the
name is declared in its lazy table, on an ordinary module through a module `__getattr__`. Importing
the stack builds none of them (building them all added about 10% to the stack's import, mostly in
extra garbage collections, `benchmarks/results/import_overhead-run3.json`).
"""

from __future__ import annotations

import sys

from odin_compat.records import REGISTRY, Record, lazy_build, lazy_export, released_after
from odin_compat.repairs.moved import LAZY, record_id, table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

_BUILT: dict[tuple[str, str, str], object] = {}


_CODE: list[dict] = []


def source(row: dict) -> dict:
    """The verbatim source and the imports of `row`'s definition (data/restore_code.json, read once)."""
    if not _CODE:
        import json
        from pathlib import Path

        # a plain file read: importlib.resources alone costs ~10 ms of start-up
        text = (Path(__file__).resolve().parent.parent / "data" / "restore_code.json").read_text(
            encoding="utf-8"
        )
        _CODE.append(json.loads(text)["sources"])
    return _CODE[0][f"{row['lib']}:{row['defined_in']}:{row['defines']}"]


def build(row: dict) -> object:
    """The object `row` describes, from its verbatim upstream source (built once per process)."""
    key = (row["lib"], row["defined_in"], row["defines"])
    if key in _BUILT:
        return _BUILT[key]
    import builtins
    import linecache

    # one name per definition: siblings from one upstream file must not overwrite each other's lines
    filename = f"<odin_compat backport: {row['link']} ({row['defines']})>"
    src = source(row)
    lines = src["code"].splitlines(keepends=True)
    linecache.cache[filename] = (len(src["code"]), None, lines, filename)  # inspect.getsource finds it
    import types

    # the definitions run in a module of their old name (dataclasses look their module up in sys.modules),
    # registered only while they run where that module is gone today
    home = types.ModuleType(row["defined_in"])
    namespace = vars(home)
    namespace["__builtins__"] = builtins
    absent = row["defined_in"] not in sys.modules
    if absent:
        sys.modules[row["defined_in"]] = home
    try:
        for statement in src["imports"]:
            exec(statement, namespace)  # noqa: S102  (import statements read from the release's own source)
        exec(compile(src["code"], filename, "exec"), namespace)  # noqa: S102
    finally:
        if absent and sys.modules.get(row["defined_in"]) is home:
            del sys.modules[row["defined_in"]]
    # Threads that touch a backport first at the same moment each build one: the first one stored is
    # the one every caller gets, now and later.
    return _BUILT.setdefault(key, namespace[row["defines"]])


class _Backports:
    """Module `<package>._odin_backports`: a lazy package's backports, built on first access."""

    def __init__(self, package: str) -> None:
        import types

        self.module = types.ModuleType(
            f"{package}._odin_backports", "Backports of odin_compat (built on use)."
        )
        self.rows: dict[str, dict] = {}
        self.module.__getattr__ = self.__getattr__  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        row = self.rows.get(name)
        if row is None:
            raise AttributeError(name)
        value = build(row)
        setattr(self.module, name, value)
        return value


_PACKAGES: dict[str, _Backports] = {}


def _lazy(row: dict) -> object:
    def provide(module: ModuleType) -> None:
        holder = _PACKAGES.setdefault(module.__name__, _Backports(module.__name__))
        holder.rows[row["name"]] = row
        sys.modules.setdefault(holder.module.__name__, holder.module)
        lazy_export(module, row["name"], "_odin_backports")

    return provide


def _on_use(row: dict) -> object:
    def provide(module: ModuleType) -> None:
        lazy_build(module, row["name"], lambda: build(row))

    return provide


for _row in table("backports"):
    _lib, _where, _name = _row["lib"], _row["where"], _row["name"]
    _is_lazy = _where in LAZY
    REGISTRY.add(
        Record(
            id=record_id(_lib, "backport", _where, _name),
            affects=f"{_lib}>{_row['last']}",  # what `needed` checks
            module=_where,
            name=_name,
            kind="lazy",  # built on first use (see the module's docstring)
            fixes=f"ImportError: cannot import name '{_name}' from '{_where}'",
            works=f"{_lib}<={_row['last']}",
            breaks=f"{_lib}>={_row['gone_in']}",
            upstream=f"{_row['link']} ({_row['defines']}, verbatim)",
            remove_when=f"no supported caller imports {_where}.{_name}",
            provide=(_lazy if _is_lazy else _on_use)(_row),
            needed=released_after(_lib, _row["last"]),  # never onto a release older than the name
            proof=(
                "test_restored::test_moved_and_backported_names",
                "test_restored::test_backports_behave_as_upstream",
            ),
        )
    )
