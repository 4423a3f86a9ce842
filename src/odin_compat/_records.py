"""Repair records, the registry, and applying them with containment.

A record is data: which crash it fixes, where it applies, what it provides,
where upstream fixed it and when odin can drop it. The machinery here decides
whether a record applies, applies it, and remembers the outcome for `report()`.
"""

from __future__ import annotations

import sys
from _thread import allocate_lock

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing import at run time: `import odin_compat` must stay cheap
    from types import ModuleType
    from typing import Callable

KINDS = ("backport", "alias", "kwarg", "heal")


class Record:
    """One repair. `module` is the module whose loading triggers it.

    Fields: id; module and name (dotted attribute path inside the module); kind
    (one of KINDS); fixes (the exact error text a user sees without odin); works
    and breaks (versions on each side); upstream (PR / commit / source link of the
    upstream original or fix); remove_when; provide (module -> object to install);
    dist and versions (a PEP 440 range on an installed distribution; empty: any);
    needed (for kwarg adapters: module -> True when the callable must be adapted).
    """

    __slots__ = (
        "id", "module", "name", "kind", "fixes", "works", "breaks", "upstream",
        "remove_when", "provide", "dist", "versions", "needed",
    )  # fmt: skip

    def __init__(
        self,
        *,
        id: str,
        module: str,
        name: str,
        kind: str,
        fixes: str,
        works: str,
        breaks: str,
        upstream: str,
        remove_when: str,
        provide: Callable[[ModuleType], object],
        dist: str = "",
        versions: str = "",
        needed: Callable[[ModuleType], bool] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        if versions and not dist:
            raise ValueError("a version range needs the distribution it applies to (dist=...)")
        self.id, self.module, self.name, self.kind = id, module, name, kind
        self.fixes, self.works, self.breaks, self.upstream = fixes, works, breaks, upstream
        self.remove_when, self.provide, self.dist = remove_when, provide, dist
        self.versions, self.needed = versions, needed

    def __repr__(self) -> str:
        return f"Record({self.id!r}, {self.kind}, {self.module}.{self.name})"


class Outcome:
    __slots__ = ("id", "module", "name", "status", "reason")

    def __init__(self, id: str, module: str, name: str, status: str, reason: str) -> None:
        self.id, self.module, self.name, self.status, self.reason = id, module, name, status, reason

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


class Registry:
    def __init__(self) -> None:
        self.records: dict[str, list[Record]] = {}
        self.outcomes: list[Outcome] = []
        self.lock = allocate_lock()

    def add(self, record: Record) -> None:
        with self.lock:
            self.records.setdefault(record.module, []).append(record)

    def for_module(self, name: str) -> list[Record]:
        with self.lock:  # copy, so repairs run without our lock held
            return list(self.records.get(name, ()))

    def all(self) -> list[Record]:
        with self.lock:
            return [r for rs in self.records.values() for r in rs]

    def note(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


REGISTRY = Registry()


def _has(module: ModuleType, dotted: str) -> bool:
    obj: object = module
    for part in dotted.split("."):
        # vars(), not getattr: lazy modules and __getattr__ must not make a name look present
        ns = vars(obj) if hasattr(obj, "__dict__") else {}
        if part not in ns:
            return False
        obj = ns[part]
    return True


def dist_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def why_applies(record: Record, module: ModuleType) -> str | None:
    """The reason the record applies to `module`, or None when it must not."""
    if record.versions:
        version = dist_version(record.dist)
        if version is None:
            return None
        from packaging.specifiers import SpecifierSet

        if version not in SpecifierSet(record.versions, prereleases=True):
            return None
        gate = f"{record.dist} {version} matches {record.versions}"
    else:
        gate = ""
    if record.kind in ("backport", "alias"):
        if _has(module, record.name):
            return None  # upstream has it: never replace upstream's object
        reason = f"{record.module}.{record.name} is absent"
    elif record.needed is not None:
        if not record.needed(module):
            return None
        reason = f"{record.module}.{record.name} needs adapting"
    else:
        reason = "always"
    return f"{reason} ({gate})" if gate else reason


def _install(module: ModuleType, dotted: str, value: object) -> None:
    *owner_path, last = dotted.split(".")
    owner: object = module
    for part in owner_path:
        owner = getattr(owner, part)
    setattr(owner, last, value)


def apply(record: Record, module: ModuleType) -> Outcome:
    """Apply one record; a failure warns and never propagates."""
    try:
        reason = why_applies(record, module)
        if reason is None:
            outcome = Outcome(record.id, record.module, record.name, "skipped", "upstream has it or out of range")
        else:
            _install(module, record.name, record.provide(module))
            outcome = Outcome(record.id, record.module, record.name, "applied", reason)
    except Exception as exc:  # containment: a broken repair must not break the import
        outcome = Outcome(record.id, record.module, record.name, "failed", f"{type(exc).__name__}: {exc}")
        import warnings

        warnings.warn(
            f"odin_compat: repair {record.id!r} on {record.module} failed and was skipped: {outcome.reason}",
            RuntimeWarning,
            stacklevel=2,
        )
    REGISTRY.note(outcome)
    return outcome


def apply_for(module_name: str) -> list[Outcome]:
    module = sys.modules.get(module_name)
    if module is None:
        return []
    return [apply(r, module) for r in REGISTRY.for_module(module_name)]
