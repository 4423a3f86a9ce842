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
    from collections.abc import Callable
    from types import ModuleType

# "lazy": declare a name on a lazy package (transformers) so it resolves through a submodule;
# its provider registers the name itself and returns None.
# "wrap": run an upstream callable inside a context a later upstream release added around it.
KINDS = ("backport", "alias", "kwarg", "heal", "lazy", "wrap")


class Record:
    """One repair. `module` is the module whose loading triggers it.

    Fields: id; module and name (dotted attribute path inside the module); kind
    (one of KINDS); fixes (the exact error text a user sees without odin); works
    and breaks (versions on each side); upstream (PR / commit / source link of the
    upstream original or fix); remove_when; provide (module -> object to install);
    dist and versions (a PEP 440 range on an installed distribution; empty: any);
    needed (for kwarg adapters: module -> True when the callable must be adapted);
    affects (for reports only, never a gate: the requirement that marks the breaking side,
    e.g. "accelerate<1.3.0"; `odin-compat doctor` decides from it without importing anything).
    """

    __slots__ = (
        "id", "module", "name", "kind", "fixes", "works", "breaks", "upstream",
        "remove_when", "provide", "dist", "versions", "needed", "affects",
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
        affects: str = "",
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        if versions and not dist:
            raise ValueError("a version range needs the distribution it applies to (dist=...)")
        self.id, self.module, self.name, self.kind = id, module, name, kind
        self.fixes, self.works, self.breaks, self.upstream = fixes, works, breaks, upstream
        self.remove_when, self.provide, self.dist = remove_when, provide, dist
        self.versions, self.needed = versions, needed
        self.affects = affects

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
    if record.kind in ("backport", "alias", "lazy"):
        if _has(module, record.name) or record.name in lazy_names(module):
            return None  # upstream has it: never replace upstream's object
        reason = f"{record.module}.{record.name} is absent"
    elif record.needed is not None:
        if not record.needed(module):
            return None
        reason = f"{record.module}.{record.name} needs adapting"
    else:
        reason = "always"
    return f"{reason} ({gate})" if gate else reason


def _owner(module: ModuleType, dotted: str) -> object:
    owner: object = module
    for part in dotted.split(".")[:-1]:
        owner = getattr(owner, part)
    return owner


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
            outcome = Outcome(
                record.id, record.module, record.name, "skipped", "upstream has it or out of range"
            )
        else:
            value = record.provide(module)
            if record.kind != "lazy":  # a lazy record's provider registers the name itself
                _install(module, record.name, value)
            REGISTRY.installed[record.id] = (module, value)
            if record.kind == "kwarg" and record.name.endswith(".__init__"):
                owner = _owner(module, record.name)
                if isinstance(owner, type):
                    carry_to_subclasses(owner)
            outcome = Outcome(record.id, record.module, record.name, "applied", reason)
    except Exception as exc:  # containment: a broken repair must not break the import
        outcome = Outcome(record.id, record.module, record.name, "failed", f"{type(exc).__name__}: {exc}")
        from odin_compat._hook import warn

        warn(f"odin_compat: repair {record.id!r} on {record.module} failed and was skipped: {outcome.reason}")
    REGISTRY.note(outcome)
    return outcome


def apply_for(module_name: str) -> list[Outcome]:
    module = sys.modules.get(module_name)
    if module is None:
        return []
    # The same module object executed again (importlib.reload): its new classes and functions are
    # repaired again; what odin installed and the module's code left in place stays as it is.
    again = REGISTRY.repaired.get(module_name) is module
    REGISTRY.repaired[module_name] = module
    return [apply(r, module) for r in REGISTRY.for_module(module_name) if not (again and holds(r))]


def repair_replaced() -> None:
    """Repair again every module whose object in sys.modules is no longer the one repaired.

    Runs on every import (the hook's `on_find`), so it stays an identity check per module.
    """
    modules = sys.modules
    for name, module in list(REGISTRY.repaired.items()):
        current = modules.get(name)
        if current is not None and current is not module:
            apply_for(name)


def holds(record: Record) -> bool:
    """True when what `record` installed is still what its module hands out now."""
    module = sys.modules.get(record.module)
    if module is None:
        return False
    if record.kind == "lazy":
        return _has(module, record.name) or record.name in lazy_names(module)
    done = REGISTRY.installed.get(record.id)
    if done is None:
        return False
    *owner_path, last = record.name.split(".")
    owner: object = module
    try:
        for part in owner_path:
            owner = getattr(owner, part)
    except AttributeError:
        return False
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


# --- helpers for record modules (added with the repair catalogue) -----------------------------

_warned: set[str] = set()


def warn_once(key: str, message: str, category: type[Warning] = FutureWarning) -> None:
    """Warn once per process for `key` (deprecated spellings that an adapter translates)."""
    with REGISTRY.lock:
        if key in _warned:
            return
        _warned.add(key)
    import warnings

    warnings.warn(message, category, stacklevel=3)


def accepts(func: Callable, param: str) -> bool:
    """True when `func` takes keyword `param` by name; a bare **kwargs does not count.

    Follows `__wrapped__`, so an odin adapter reports the upstream signature.
    """
    import inspect

    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True  # cannot tell: do not adapt
    p = params.get(param)
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def adapted(func: object, record_id: str | None = None) -> bool:
    """True when `func` is already an odin adapter (of `record_id`, if given), anywhere along its
    `__wrapped__` chain: a record must not wrap twice, but two records may stack."""
    for _ in range(20):
        if func is None:
            return False
        mark = getattr(func, "__odin_record__", None)
        if mark is not None and (record_id is None or mark == record_id):
            return True
        func = getattr(func, "__wrapped__", None)
    return False


def _renamed(func: object, old: str) -> bool:
    for _ in range(20):
        if func is None:
            return False
        if getattr(func, "__odin_rename__", None) == old:
            return True
        func = getattr(func, "__wrapped__", None)
    return False


def kwarg_adapter(func: Callable, adapt: Callable[[tuple, dict], tuple], record_id: str) -> Callable:
    """Wrap `func` so that `adapt(args, kwargs) -> (args, kwargs)` runs before each call.

    The wrapper keeps upstream's name, docstring and signature (`__wrapped__`), and is marked
    with `__odin_record__` so `adapted()` sees it.
    """
    import functools

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        args, kwargs = adapt(args, kwargs)
        return func(*args, **kwargs)

    wrapper.__odin_record__ = record_id  # type: ignore[attr-defined]
    wrapper.__odin_adapt__ = adapt  # type: ignore[attr-defined]  # carry_to_subclasses reuses it
    return wrapper


def carry_to_subclasses(base: type) -> bool:
    """Make the keyword adapters on `base.__init__` reach subclasses with an `__init__` of their own.

    A dataclass subclass (trl's `SFTConfig`, `Seq2SeqTrainingArguments`) gets a generated
    `__init__` that never calls `base.__init__`, and a trainer subclass checks its own keywords
    before calling up. So `base` gets a `__new__` which, the first time a subclass is instantiated
    (before its `__init__` runs), wraps that subclass's own `__init__` with the same adapters:
    a rename only where the subclass takes the new name and not the old one, any other adapter only
    on a dataclass subclass of a dataclass base. Returns False (and does nothing) where a class of
    the hierarchy defines `__new__` itself: upstream's is never replaced.
    """
    if base.__new__ is not object.__new__:
        return getattr(vars(base).get("__new__"), "__odin_carry__", False)

    def __new__(cls: type, *args: object, **kwargs: object) -> object:
        if cls is not base:
            _carry(base, cls)
        return object.__new__(cls)

    __new__.__odin_carry__ = True  # type: ignore[attr-defined]
    base.__new__ = staticmethod(__new__)  # type: ignore[assignment]
    return True


def _carry(base: type, cls: type) -> None:
    for owner in reversed(cls.__mro__[: cls.__mro__.index(base)]):  # each class between, base-most first
        init = vars(owner).get("__init__")
        if init is None or getattr(init, "__odin_carried__", False):
            continue
        wrapped = init
        chain, func = [], vars(base).get("__init__")
        for _ in range(20):  # base's adapters, outermost first
            if func is None:
                break
            if getattr(func, "__odin_adapt__", None) is not None:
                chain.append(func)
            func = getattr(func, "__wrapped__", None)
        dataclasses = "__dataclass_fields__" in vars(owner) and "__dataclass_fields__" in vars(base)
        for adapter in reversed(chain):  # innermost first, as on base
            old, new = getattr(adapter, "__odin_rename__", None), getattr(adapter, "__odin_rename_to__", None)
            fits = (accepts(init, new) and not accepts(init, old)) if old and new else dataclasses
            if fits and not adapted(wrapped, adapter.__odin_record__):
                wrapped = kwarg_adapter(wrapped, adapter.__odin_adapt__, adapter.__odin_record__)
        wrapped.__odin_carried__ = True  # type: ignore[attr-defined]
        if wrapped is not init:
            owner.__init__ = wrapped  # type: ignore[misc]
        else:
            try:
                init.__odin_carried__ = True
            except AttributeError:
                pass


def lazy_names(module: ModuleType) -> set[str]:
    """Names a lazy package (transformers' `_LazyModule`, huggingface_hub's `__getattr__`)
    declares without importing them; empty for an ordinary module."""
    names: set[str] = set()
    for attr in ("_class_to_module", "_objects"):  # transformers _LazyModule
        table = vars(module).get(attr)
        if isinstance(table, dict):
            names.update(table)
    table = vars(module).get("_SUBMOD_ATTRS")  # huggingface_hub: submodule -> names
    if isinstance(table, dict):
        for values in table.values():
            names.update(values)
    return names


def lazy_export(module: ModuleType, name: str, submodule: str) -> None:
    """Make `from <lazy package> import name` resolve through `submodule` (no import now).

    For transformers' `_LazyModule`: its `__getattr__` imports the submodule, where a backport
    record has put `name`, then caches the value on the package.
    """
    table = vars(module).get("_class_to_module")
    if not isinstance(table, dict):
        raise TypeError(f"{module.__name__} is not a transformers-style lazy module")
    table.setdefault(name, submodule)
    all_ = vars(module).get("__all__")
    if isinstance(all_, list) and name not in all_:
        all_.append(name)


def rename_kwarg(func: Callable, old: str, new: str, record_id: str, *, warn: str | None = None) -> Callable:
    """Adapter for `func`, which takes `new` but not `old`: a call with `old=` is passed on as `new=`.

    Both names at once raise ValueError (as transformers' `deprecate_kwarg(raise_if_both_names=True)`).
    `warn`, if given, is issued once per process (the old name is a deprecated spelling).
    """
    qualname = getattr(func, "__qualname__", getattr(func, "__name__", "function"))

    def adapt(args: tuple, kwargs: dict) -> tuple:
        if old in kwargs:
            if new in kwargs:
                raise ValueError(f"Both `{old}` and `{new}` are set for `{qualname}`; pass only `{new}`.")
            kwargs[new] = kwargs.pop(old)
            if warn:
                warn_once(f"{record_id}:{old}", warn)
        return args, kwargs

    wrapper = kwarg_adapter(func, adapt, record_id)
    wrapper.__odin_rename__ = old  # type: ignore[attr-defined]
    wrapper.__odin_rename_to__ = new  # type: ignore[attr-defined]
    return wrapper


def handled_upstream(func: object, name: str) -> bool:
    """True when a decorator upstream put on `func` already handles keyword `name`.

    Such decorators (transformers' `deprecate_kwarg`) hide the name from the signature, but a
    layer of the `__wrapped__` chain closes over it.
    """
    seen = 0
    while func is not None and seen < 10:
        for cell in getattr(func, "__closure__", None) or ():
            try:
                if cell.cell_contents == name:
                    return True
            except ValueError:  # empty cell
                continue
        func, seen = getattr(func, "__wrapped__", None), seen + 1
    return False


def renaming(owner_path: str, old: str, new: str) -> Callable[[ModuleType], bool]:
    """`needed` for a rename record: the callable at `owner_path` takes `new` and lacks `old`,
    and no upstream decorator translates `old` already."""

    def needed(module: ModuleType) -> bool:
        func: object = module
        for part in owner_path.split("."):
            func = getattr(func, part)
        return (
            not _renamed(func, old)
            and accepts(func, new)  # type: ignore[arg-type]
            and not accepts(func, old)  # type: ignore[arg-type]
            and not handled_upstream(func, old)
        )

    return needed
