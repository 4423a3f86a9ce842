"""The registry of records, and applying them with containment.

The machinery behind `odin_compat.records`: it decides whether a record applies, applies it, and
remembers the outcome for `report()`.
"""

from __future__ import annotations

import sys
from _operator import is_ as _is
from _operator import itemgetter as _itemgetter
from _thread import allocate_lock

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing import at run time: `import odin_compat` must stay cheap
    from types import ModuleType

    from odin_compat.records import Record


class Outcome:
    __slots__ = ("id", "module", "name", "status", "reason")

    def __init__(self, id: str, module: str, name: str, status: str, reason: str) -> None:
        self.id, self.module, self.name, self.status, self.reason = id, module, name, status, reason

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


class Registry:
    def __init__(self) -> None:
        self.records: dict[str, list[Record]] = {}
        self.outcomes: list[Outcome] = []  # every outcome, in order (history)
        # module name -> the module object its records last ran on: a module object replaced in
        # sys.modules (transformers re-executes its __init__) is found and repaired again
        self.repaired: dict[str, ModuleType] = {}
        # record id -> (module object, value installed): what `holds` checks against
        self.installed: dict[str, tuple[ModuleType, object]] = {}
        self.lock = allocate_lock()

    def add(self, record: Record) -> None:
        with self.lock:
            self.records.setdefault(record.module, []).append(record)

    def for_module(self, name: str) -> list[Record]:
        with self.lock:  # copy, so repairs run without our lock held
            return list(self.records.get(name, ()))

    def all(self) -> list[Record]:
        """Every record, importing the record modules that activation has not needed yet."""
        from odin_compat import repairs

        repairs.load_all()
        return self.loaded()

    def loaded(self) -> list[Record]:
        """The records of the record modules imported so far."""
        with self.lock:
            return [r for rs in self.records.values() for r in rs]

    def modules_of(self, target: str) -> set[str]:
        """The modules that the loaded records of one target library repair."""
        with self.lock:
            return {m for m in self.records if m.partition(".")[0] == target}

    def note(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


REGISTRY = Registry()


def has(module: ModuleType, dotted: str) -> bool:
    """True when `module` itself defines the dotted name (a lazy `__getattr__` does not count)."""
    obj: object = module
    for part in dotted.split("."):
        # vars(), not getattr: lazy modules and __getattr__ must not make a name look present
        ns = vars(obj) if hasattr(obj, "__dict__") else {}
        if part not in ns:
            return False
        obj = ns[part]
    return True


# transformers' _LazyModule tables, and odin's own names on an ordinary module (lazy_alias); huggingface_hub
# keeps its names per submodule in _SUBMOD_ATTRS.
_NAME_TABLES = ("_class_to_module", "_objects", "__odin_moved__")


def lazy_names(module: ModuleType) -> set[str]:
    """Names a lazy package (transformers' `_LazyModule`, huggingface_hub's `__getattr__`)
    declares without importing them; empty for an ordinary module."""
    names: set[str] = set()
    for attr in _NAME_TABLES:
        table = vars(module).get(attr)
        if isinstance(table, dict):
            names.update(table)
    table = vars(module).get("_SUBMOD_ATTRS")  # huggingface_hub: submodule -> names
    if isinstance(table, dict):
        for values in table.values():
            names.update(values)
    return names


def declared_lazily(module: ModuleType, name: str) -> bool:
    """`name in lazy_names(module)`, without building the set (transformers declares ~4,000 names,
    and each backport, alias and lazy record asks this as its module loads)."""
    ns = vars(module)
    for attr in _NAME_TABLES:
        table = ns.get(attr)
        if isinstance(table, dict) and name in table:
            return True
    table = ns.get("_SUBMOD_ATTRS")
    if isinstance(table, dict):
        return any(
            name in (values if isinstance(values, (list, tuple, set, frozenset)) else set(values))
            for values in table.values()
        )
    return False


def why_applies(record: Record, module: ModuleType) -> str | None:
    """The reason the record applies to `module`, or None when it must not."""
    return _decide(record, module)[0]


_SKIPPED = "upstream has it or out of range"


def _decide(record: Record, module: ModuleType) -> tuple[str | None, str]:
    """(why the record applies, or None; why it is skipped otherwise)."""
    if record.kind in ("backport", "alias", "lazy"):
        if has(module, record.name) or declared_lazily(module, record.name):
            return None, _SKIPPED  # upstream has it: never replace upstream's object
        if record.needed is not None and not record.needed(module):
            # e.g. a release older than the name itself, or the name's new home missing
            return (
                None,
                f"not for this release (the record is for {record.affects}, where the name's home exists)",
            )
        return f"{record.module}.{record.name} is absent", ""
    if record.needed is not None:
        if not record.needed(module):
            return None, _SKIPPED
        return f"{record.module}.{record.name} needs adapting", ""
    return "always", ""


def _owner(module: ModuleType, dotted: str) -> object:
    owner: object = module
    for part in dotted.split(".")[:-1]:
        owner = getattr(owner, part)
    return owner


def apply(record: Record, module: ModuleType) -> Outcome:
    """Apply one record; a failure warns and never propagates."""
    try:
        reason, skipped = _decide(record, module)
        if reason is None:
            outcome = Outcome(record.id, record.module, record.name, "skipped", skipped)
        else:
            value = record.provide(module)
            if record.kind != "lazy":  # a lazy record's provider registers the name itself
                setattr(_owner(module, record.name), record.name.rpartition(".")[2], value)
            REGISTRY.installed[record.id] = (module, value)
            if record.kind == "kwarg" and record.name.endswith(".__init__"):
                owner = _owner(module, record.name)
                if isinstance(owner, type):
                    from odin_compat._adapters import carry_to_subclasses

                    carry_to_subclasses(owner)
            outcome = Outcome(record.id, record.module, record.name, "applied", reason)
    except Exception as exc:  # containment: a broken repair must not break the import
        outcome = Outcome(record.id, record.module, record.name, "failed", f"{type(exc).__name__}: {exc}")
        from odin_compat._hook import warn

        warn(f"odin_compat: repair {record.id!r} on {record.module} failed and was skipped: {outcome.reason}")
    REGISTRY.note(outcome)
    return outcome


# While apply_for runs records: id(an `__all__` list) -> [the list, a set of its items, its length].
# transformers' `__all__` holds ~7,000 names and each of its ~60 lazy records declares one name
# public: a set answers `in` without a scan of the list (~30 us a record). A list that changed
# length meanwhile (someone else wrote to it) gets a new set; the sets are dropped when the
# outermost apply_for returns.
_public: dict[int, list] = {}
# And, for the same span, the keywords of each signature read (`_adapters.accepting`).
_keywords: dict[object, object] = {}
_applying = [0]
_applying_lock = allocate_lock()


def declare_public(module: ModuleType, name: str) -> None:
    """List `name` in the module's `__all__`, where it has one (a star-import then resolves it)."""
    all_ = vars(module).get("__all__")
    if not isinstance(all_, list):
        return
    if not _applying[0]:
        if name not in all_:
            all_.append(name)
        return
    seen = _public.get(id(all_))
    if seen is None or seen[0] is not all_ or seen[2] != len(all_):
        try:
            seen = _public[id(all_)] = [all_, set(all_), len(all_)]
        except TypeError:  # an unhashable item: scan the list
            if name not in all_:
                all_.append(name)
            return
    if name not in seen[1]:
        all_.append(name)
        seen[1].add(name)
        seen[2] = len(all_)


def apply_for(module_name: str) -> list[Outcome]:
    module = sys.modules.get(module_name)
    if module is None:
        return []
    # The same module object executed again (importlib.reload): its new classes and functions are
    # repaired again; what odin installed and the module's code left in place stays as it is.
    again = REGISTRY.repaired.get(module_name) is module
    REGISTRY.repaired[module_name] = module
    _take_snapshot()
    with _applying_lock:
        _applying[0] += 1
    try:
        return [apply(r, module) for r in REGISTRY.for_module(module_name) if not (again and holds(r))]
    finally:
        with _applying_lock:
            _applying[0] -= 1
            if not _applying[0]:
                _public.clear()
                _keywords.clear()


def _never(modules: object) -> tuple:
    raise TypeError


# (the `repaired` dict it was taken of; a getter of the repaired names' entries in sys.modules, as
# a tuple; how many names; the module objects repaired), taken as apply_for records a module:
# repair_replaced compares them in C with one call, without iterating the dict.
_snapshot: tuple = (None, _never, 0, ())


def _take_snapshot() -> None:
    global _snapshot
    repaired = REGISTRY.repaired
    names = tuple(repaired)
    values = tuple(map(repaired.get, names))
    if len(names) >= 2:  # itemgetter of one name returns the item itself, not a tuple
        _snapshot = (repaired, _itemgetter(*names), len(names), values)
    else:
        _snapshot = (None, _never, 0, ())


def repair_replaced() -> None:
    """Repair again every module whose object in sys.modules is no longer the one repaired.

    Runs on every import (the hook's `on_find`), so it stays an identity check per module, in C
    while nothing was replaced.
    """
    modules = sys.modules
    repaired = REGISTRY.repaired
    of, get, names_of, values = _snapshot
    try:
        if of is repaired and len(repaired) == names_of and all(map(_is, get(modules), values)):
            return  # the snapshot is repaired's content (a stale one fails the identity check)
    except (KeyError, TypeError):  # a repaired module has left sys.modules: the check below
        pass
    try:
        if all(map(_is, map(modules.get, repaired), repaired.values())):
            return
    except RuntimeError:  # another thread added a module meanwhile: check one by one
        pass
    for name, module in list(repaired.items()):
        current = modules.get(name)
        if current is not None and current is not module:
            apply_for(name)


def holds(record: Record) -> bool:
    """True when what `record` installed is still what its module hands out now."""
    module = sys.modules.get(record.module)
    if module is None:
        return False
    if record.kind == "lazy":
        return has(module, record.name) or declared_lazily(module, record.name)
    done = REGISTRY.installed.get(record.id)
    if done is None:
        return False
    try:
        owner = _owner(module, record.name)
    except AttributeError:
        return False
    last = record.name.rpartition(".")[2]
    value = vars(owner).get(last) if hasattr(owner, "__dict__") else None
    for _ in range(20):  # a later record may have wrapped this one's adapter: follow __wrapped__
        if value is done[1]:
            return True
        if value is None:
            return False
        value = getattr(value, "__wrapped__", None) or getattr(value, "__func__", None)
    return False


def _why_lost(record: Record) -> str:
    """Say what now stands where the repair was: usually another library replaced the object."""
    obj: object = sys.modules.get(record.module)
    for part in record.name.split("."):
        obj = getattr(obj, part, None)
    owner = getattr(obj, "__qualname__", type(obj).__name__)
    return f"replaced since it was applied: {record.module}.{record.name} is now {owner} from {getattr(obj, '__module__', '?')}"


def current_outcomes() -> list[Outcome]:
    """Each record's latest outcome, with "applied" checked against the modules as they are now
    (a repair that no longer holds is reported as "lost")."""
    repair_replaced()
    latest: dict[str, Outcome] = {}
    with REGISTRY.lock:
        for outcome in REGISTRY.outcomes:
            latest[outcome.id] = outcome
    by_id = {r.id: r for r in REGISTRY.loaded()}
    result = []
    for outcome in latest.values():
        record = by_id.get(outcome.id)
        if outcome.status == "applied" and record is not None and not holds(record):
            outcome = Outcome(outcome.id, outcome.module, outcome.name, "lost", _why_lost(record))
        result.append(outcome)
    return result
