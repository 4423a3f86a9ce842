"""Declaring repair records: the public authoring API.

A record is one declaration on the function that provides the repair, in the manner of TRL's
`trl/_compat.py` patches: which error it fixes, where it applies, the releases it affects, its
upstream source or fix, when it can be removed, and the test that proves it::

    from odin_compat.records import record

    @record(
        "accelerate-clear-device-cache",
        "accelerate.utils.memory:clear_device_cache",
        kind="backport",
        fixes="ImportError: cannot import name 'clear_device_cache' from 'accelerate.utils.memory'",
        affects="accelerate<0.32.0",
        upstream="https://github.com/huggingface/accelerate/blob/v0.33.0/src/accelerate/utils/memory.py",
        remove_when="odin supports only accelerate>=0.32",
        proof="test_repairs_accelerate::test_clear_device_cache",
    )
    def _clear_device_cache(module, record):
        ...

The version range is stated once (`affects`, the breaking side); the working side is derived from it.
`REGISTRY.add(Record(...))` remains the low-level form that the decorator builds on.
"""

from __future__ import annotations

from odin_compat._adapters import (
    accepting,
    accepts,
    adapted,
    carry_to_subclasses,
    handled_upstream,
    kwarg_adapter,
    rename_kwarg,
    warn_once,
)
from odin_compat._registry import REGISTRY, declare_public, lazy_names

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing import at run time: `import odin_compat` must stay cheap
    from collections.abc import Callable
    from types import ModuleType

    Provider = Callable[[ModuleType, "Record"], object]
    Predicate = Callable[..., bool]

__all__ = [
    "KINDS", "REGISTRY", "Record", "record", "accepting", "accepts", "adapted", "carry_to_subclasses", "handled_upstream",
    "kwarg_adapter", "lacks_kwarg", "lacks_module", "lazy_alias", "lazy_export", "lazy_names", "module_alias", "module_moved", "not_adapted", "relocate",
    "rename_kwarg", "renaming", "warn_once",
]  # fmt: skip

# "backport": put back a removed object; "alias": re-export one under another module;
# "lazy": declare a name on a lazy package (transformers) so it resolves through a submodule (its
# provider registers the name itself and returns None); "kwarg": adapt the keywords a callable takes;
# "wrap": run an upstream callable inside what a later upstream release added around it.
# "kwarg" and "wrap" records apply where their `needed` says so; the others where the name is absent.
KINDS = ("backport", "alias", "kwarg", "lazy", "wrap")


class Record:
    """One repair. `module` is the module whose loading triggers it; `name` the dotted attribute
    path inside it; `provide(module)` returns the object to install there.

    `affects` is the requirement on the breaking side ("accelerate<1.3.0"; a bare name: every
    release): reports decide from it without importing anything, and never gate on it. `note`
    says more about that side. `works` and `breaks`, the older form's texts, are derived from
    `affects` and `note` unless given. `proof`: the tests ("file::test" prefixes) that prove it.
    """

    __slots__ = (
        "id", "module", "name", "kind", "fixes", "upstream", "remove_when", "provide", "needed", "affects",
        "note", "proof", "_works", "_breaks",
    )  # fmt: skip

    def __init__(
        self,
        *,
        id: str,
        module: str,
        name: str,
        kind: str,
        fixes: str,
        upstream: str,
        remove_when: str,
        provide: Callable[[ModuleType], object],
        needed: Callable[[ModuleType], bool] | None = None,
        affects: str = "",
        note: str = "",
        proof: str | tuple[str, ...] = (),
        works: str = "",
        breaks: str = "",
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        self.id, self.module, self.name, self.kind = id, module, name, kind
        self.fixes, self.upstream, self.remove_when = fixes, upstream, remove_when
        self.provide, self.needed, self.affects, self.note = provide, needed, affects, note
        self.proof = (proof,) if isinstance(proof, str) else tuple(proof)
        self._works, self._breaks = works, breaks

    @property
    def works(self) -> str:
        """The releases that work without odin: the complement of `affects`."""
        return self._works or _complement(self.affects)

    @property
    def breaks(self) -> str:
        return self._breaks or " ".join(p for p in (self.affects, self.note) if p)

    def __repr__(self) -> str:
        return f"Record({self.id!r}, {self.kind}, {self.module}.{self.name})"


_FLIP = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}


def _complement(requirement: str) -> str:
    """ "accelerate<1.3.0" -> "accelerate>=1.3.0"; a bare name -> "none"; a two-sided range -> "outside"."""
    if not requirement:
        return ""
    cut = min((i for i, c in enumerate(requirement) if c in "<>=!~ "), default=len(requirement))
    name, spec = requirement[:cut], requirement[cut:].strip()
    if not spec:
        return f"no {name} release"
    for op in ("<=", ">=", "==", "!=", "<", ">"):
        if spec.startswith(op) and "," not in spec:
            return f"{name}{_FLIP[op]}{spec[len(op) :]}"
    return f"{name} outside {spec}"


def record(
    id: str,
    where: str,
    *,
    kind: str,
    fixes: str,
    upstream: str,
    remove_when: str,
    affects: str,
    note: str = "",
    needed: Predicate | None = None,
    proof: str | tuple[str, ...] = (),
) -> Callable[[Provider], Provider]:
    """Declare the decorated provider as record `id`, repairing `where` ("module:dotted.name").

    The provider and `needed` are called with the target module and the record itself, so an
    adapter marks itself with `record.id` rather than a retyped id. Decorators stack: one provider
    may serve several records (a backport and its re-exports). Returns the provider unchanged.
    """
    module, sep, name = where.partition(":")
    if not sep or not name:
        raise ValueError(f"where must be 'module:name', not {where!r}")

    def declare(provide: Provider) -> Provider:
        rec = Record(
            id=id, module=module, name=name, kind=kind, fixes=fixes, upstream=upstream,
            remove_when=remove_when, affects=affects, note=note, proof=proof,
            provide=lambda m: provide(m, rec),
            needed=None if needed is None else (lambda m: needed(m, rec)),
        )  # fmt: skip
        REGISTRY.add(rec)
        return provide

    return declare


# --- shared `needed` predicates: "does upstream lack this?" -------------------------------------


def _resolve(module: ModuleType, dotted: str) -> object:
    obj: object = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _mine(func: object, record: Record | None) -> bool:
    # A record never wraps twice; without a record (the low-level form) any odin adapter counts.
    return adapted(func, record.id if record is not None else None)


def renaming(path: str, old: str, new: str) -> Predicate:
    """`needed` for a rename record: the callable at `path` takes `new` and lacks `old`, and no
    upstream decorator translates `old` already."""

    def needed(module: ModuleType, record: Record | None = None) -> bool:
        from odin_compat._adapters import _renamed

        func = _resolve(module, path)
        return (
            not _renamed(func, old)
            and accepts(func, new)  # type: ignore[arg-type]
            and not accepts(func, old)  # type: ignore[arg-type]
            and not handled_upstream(func, old)
        )

    return needed


def lacks_kwarg(path: str, *params: str, given: str | None = None) -> Predicate:
    """`needed` for a keyword adapter: the callable at `path` lacks one of `params` (and takes
    `given`, the keyword upstream moved them into), and this record has not adapted it yet."""

    def needed(module: ModuleType, record: Record | None = None) -> bool:
        func = _resolve(module, path)
        if _mine(func, record):
            return False
        takes = accepting(func)  # type: ignore[arg-type]
        return (given is None or takes(given)) and not all(takes(p) for p in params)

    return needed


def not_adapted(path: str, *others: str) -> Predicate:
    """`needed` for a wrap record: the callable at `path` carries neither this record's adapter nor
    one of the records `others` (which wrap the same object where modules share it)."""

    def needed(module: ModuleType, record: Record | None = None) -> bool:
        func = _resolve(module, path)
        return not _mine(func, record) and not any(adapted(func, o) for o in others)

    return needed


def lacks_module(name: str) -> Predicate:
    """`needed` for a record that backports a whole submodule `name` of the target package: the
    package has no such attribute and no such module can be found."""

    def needed(module: ModuleType, record: Record | None = None) -> bool:
        import importlib.util
        import sys

        if name.rpartition(".")[2] in vars(module):
            return False
        if name in sys.modules:  # only odin's own (a backport without spec, or an alias): a re-executed
            found = sys.modules[name]  # package needs it again
            return getattr(found, "__spec__", None) is None or hasattr(found, "__odin_alias_of__")
        return importlib.util.find_spec(name) is None

    return needed


_RELEASES: dict[str, object] = {}  # distribution -> its installed Version (or None), read once


def released_after(dist: str, last: str) -> Predicate:
    """`needed` for a name that releases of `dist` up to `last` still had: only a later release lost
    it. An older release that lacks it never had it (it came later), and must not be given it: its
    other modules may lack what the name needs, and tools that import every name `dir()` lists (unsloth's
    compiler) would then fail on it. Unknown version: the record applies, as before."""

    def needed(module: ModuleType, record: Record | None = None) -> bool:
        if dist not in _RELEASES:
            import sys

            from packaging.version import InvalidVersion, Version

            from odin_compat._stack import version

            raw = getattr(sys.modules.get(dist), "__version__", None)
            raw = raw if isinstance(raw, str) else version(dist)
            try:
                _RELEASES[dist] = Version(raw) if isinstance(raw, str) else None
            except InvalidVersion:
                _RELEASES[dist] = None
        installed = _RELEASES[dist]
        return installed is None or installed > _version_of(last)

    return needed


_LAST: dict[str, object] = {}  # a release string -> its Version (hundreds of records share a few)


def _version_of(text: str) -> object:
    found = _LAST.get(text)
    if found is None:
        from packaging.version import Version

        found = _LAST[text] = Version(text)
    return found


def findable(dotted: str) -> bool:
    """True when module `dotted` can be imported, found on disk without importing its parents
    (`importlib.util.find_spec` would import them: a moved module's new home may be heavy)."""
    import importlib.util
    import os
    import sys
    from importlib.machinery import all_suffixes

    if dotted in sys.modules:
        return True
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the nearest parent already imported
        parent = sys.modules.get(".".join(parts[:i]))
        if parent is not None:
            paths = list(getattr(parent, "__path__", None) or ())
            break
    else:  # nothing of it imported: the top-level package's spec imports nothing
        spec = importlib.util.find_spec(parts[0])
        if spec is None:
            return False
        if len(parts) == 1:
            return True
        i, paths = 1, list(spec.submodule_search_locations or ())
    rest = parts[i:]
    for depth, part in enumerate(rest):
        found = []
        for folder in paths:
            if not os.path.isdir(folder):
                return True  # a zip file or another importer's entry: no answer without importing
            package = os.path.join(folder, part)
            if os.path.isfile(os.path.join(package, "__init__.py")) or any(
                os.path.isfile(os.path.join(package, "__init__" + suffix)) for suffix in all_suffixes()
            ):  # a package installed without its sources has __init__.pyc
                found.append(package)
            elif depth == len(rest) - 1 and any(
                os.path.isfile(os.path.join(folder, part + suffix)) for suffix in all_suffixes()
            ):
                return True
        if not found:
            return False
        paths = found
    return True


def module_moved(old: str, new: str) -> Predicate:
    """`needed` for a record that puts back module `old` as today's module `new`: the package lacks
    `old` (see `lacks_module`) and `new` exists (found on disk; nothing is imported)."""
    lacks = lacks_module(old)

    def needed(module: ModuleType, record: Record | None = None) -> bool:
        return lacks(module, record) and findable(new)

    return needed


def module_alias(old: str, new: str) -> ModuleType:
    """A module named `old` whose names are today's module `new`'s objects themselves, and install it
    in `sys.modules` (unless a module of that name is already there). `new` is imported on the first
    name asked of it, so importing the package stays as cheap as upstream's.

    Every name is looked up on `new` each time: what `old.X` gives is always `new.X`, the same object.
    Returns the module now in `sys.modules[old]`.
    """
    import sys
    import types
    from importlib.machinery import ModuleSpec

    alias = types.ModuleType(old, f"odin_compat: `{old}` moved to `{new}`; its names are `{new}`'s objects.")
    alias.__spec__ = ModuleSpec(old, None, origin=f"alias of {new}")  # find_spec(old) must not raise
    alias.__odin_alias_of__ = new  # type: ignore[attr-defined]

    def target() -> ModuleType:
        import importlib

        return importlib.import_module(new)

    def __getattr__(name: str) -> object:
        # `import`, `inspect` and friends probe dunders (`__path__`, `__file__`) of every module in
        # sys.modules: those must not import the moved module; `__all__` does (`from old import *`)
        if name.startswith("__") and name != "__all__":
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        module = target()
        if name == "__all__":
            return list(getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")]))
        try:
            return getattr(module, name)
        except AttributeError:
            raise AttributeError(f"module {old!r} has no attribute {name!r}") from None

    def __dir__() -> list[str]:
        return sorted(set(vars(alias)) | set(dir(target())))

    alias.__getattr__ = __getattr__  # type: ignore[attr-defined]
    alias.__dir__ = __dir__  # type: ignore[attr-defined]
    return sys.modules.setdefault(old, alias)


# --- helpers for providers ---------------------------------------------------------------------


def _declare_public(module: ModuleType, name: str) -> None:
    """List `name` in the module's `__all__`, where it has one (a star-import then resolves it)."""
    declare_public(module, name)


def lazy_export(module: ModuleType, name: str, submodule: str) -> None:
    """Make `from <lazy package> import name` resolve through `submodule` (no import now).

    For transformers' `_LazyModule`: its `__getattr__` imports the submodule, where a backport
    record has put `name`, then caches the value on the package.
    """
    table = vars(module).get("_class_to_module")
    if not isinstance(table, dict):
        raise TypeError(f"{module.__name__} is not a transformers-style lazy module")
    table.setdefault(name, submodule)
    _declare_public(module, name)


def _lazy_table(module: ModuleType) -> dict[str, object]:
    """`module.__odin_moved__`: odin's names on an ordinary module, resolved by a module `__getattr__`
    (PEP 562), chained after one that upstream defined. A value is the module to take the name from
    (an alias) or a function that builds it (a backport)."""
    ns = vars(module)
    table = ns.get("__odin_moved__")
    if not isinstance(table, dict):
        table = ns["__odin_moved__"] = {}
        upstream = ns.get("__getattr__")

        def __getattr__(attr: str) -> object:
            where = table.get(attr)
            if where is None:
                if upstream is not None:
                    return upstream(attr)
                raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}")
            if callable(where):
                return where()
            import importlib

            return getattr(importlib.import_module(where), attr)

        upstream_dir = ns.get("__dir__")

        def __dir__() -> list[str]:
            names = set(upstream_dir()) if upstream_dir is not None else set(ns)
            return sorted(names | set(table))

        __getattr__.__odin_moved__ = table  # type: ignore[attr-defined]
        ns["__getattr__"] = __getattr__
        ns["__dir__"] = __dir__
    return table


def lazy_alias(module: ModuleType, name: str, target: str) -> None:
    """Make `module.name` resolve, on first use, to `name` of module `target` (the same object).

    For an ordinary module (no lazy table). Nothing is imported now: `target` may import `module`
    itself (a circular import at this point).
    """
    _lazy_table(module)[name] = target


def lazy_build(module: ModuleType, name: str, build: Callable[[], object]) -> None:
    """Make `module.name` resolve, on first use, to what `build()` returns (it should cache it).

    For an ordinary module: nothing is built while the module imports, so a backport that a
    script never uses costs nothing. `dir()` lists it; a star-import gets it where the module
    declares `__all__` (without one, a star-import takes only the module's own dict).
    """
    _lazy_table(module)[name] = build
    _declare_public(module, name)


def relocate(obj: object, module: str) -> object:
    """Make a backported object say it lives where upstream defined it (`__module__`)."""
    obj.__module__ = module  # type: ignore[attr-defined]
    return obj
