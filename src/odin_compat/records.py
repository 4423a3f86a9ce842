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
    accepts,
    adapted,
    carry_to_subclasses,
    handled_upstream,
    kwarg_adapter,
    rename_kwarg,
    warn_once,
)
from odin_compat._registry import REGISTRY, lazy_names

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing import at run time: `import odin_compat` must stay cheap
    from collections.abc import Callable
    from types import ModuleType

    Provider = Callable[[ModuleType, "Record"], object]
    Predicate = Callable[..., bool]

__all__ = [
    "KINDS", "REGISTRY", "Record", "record", "accepts", "adapted", "carry_to_subclasses", "handled_upstream",
    "kwarg_adapter", "lacks_kwarg", "lacks_module", "lazy_export", "lazy_names", "not_adapted", "relocate",
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
        return (
            not _mine(func, record)
            and (given is None or accepts(func, given))  # type: ignore[arg-type]
            and not all(accepts(func, p) for p in params)  # type: ignore[arg-type]
        )

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
        if name in sys.modules:  # only odin's own backport (no spec): a re-executed package needs it again
            return getattr(sys.modules[name], "__spec__", None) is None
        return importlib.util.find_spec(name) is None

    return needed


# --- helpers for providers ---------------------------------------------------------------------


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


def relocate(obj: object, module: str) -> object:
    """Make a backported object say it lives where upstream defined it (`__module__`)."""
    obj.__module__ = module  # type: ignore[attr-defined]
    return obj
