"""The healer: give functions rebuilt from another module's source the globals they lack.

Libraries such as unsloth take a function's source (`inspect.getsource`), edit
it, and `exec` it into their own module namespace. The new function resolves
globals at call time in *that* namespace, so any name the original's module
imported but the rebuilder's does not raises `NameError` (the user's
`FP8BackendType` crash, `File "<string>", line 135, in prepare`).

The repair: for every global name the rebuilt code reads (nested code objects
included) that neither its globals nor builtins define, take the value from the
module the original came from, with `dict.setdefault`. A name the namespace
already defines is never touched; only reads that would raise NameError change.

Two triggers, so the repair is in place before rebuilt code first runs:
- an audit hook on `exec` of source-string code (`co_filename` like `<string>`)
  heals at the moment of the rebuild, into the caller's namespace;
- `sweep()` walks the classes of the watched libraries for functions whose
  globals are foreign; it runs after each rebuilder import and as `heal()`.
"""

from __future__ import annotations

import builtins
import os
import sys
from _thread import allocate_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# The types, without importing `types` (keeps `import odin_compat` cheap).
CodeType = type((lambda: 0).__code__)
FunctionType = type(lambda: 0)
ModuleType = type(sys)

# Libraries whose functions get rebuilt by others: where originals come from.
ORIGIN_PACKAGES = ("accelerate", "transformers", "trl", "peft")

_LOAD_OPS = {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"}
_reads_cache: dict[CodeType, frozenset[str]] = {}
_healed: list[tuple[str, str, str]] = []  # (where, name, origin module), for report()
_lock = allocate_lock()
_BUILTINS = vars(builtins)


def _codes(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _codes(const)


def global_reads(code: CodeType) -> frozenset[str]:
    """Names that `code` (and the code nested in it) looks up as globals."""
    cached = _reads_cache.get(code)
    if cached is None:
        import dis  # lazily: only rebuilt code with a missing name gets here

        names = set()
        for c in _codes(code):
            names.update(i.argval for i in dis.get_instructions(c) if i.opname in _LOAD_OPS)
        cached = _reads_cache[code] = frozenset(names)
    return cached


def _maybe_missing(code: CodeType, namespace: dict) -> bool:
    """Cheap pre-filter on co_names (a superset of the global reads)."""
    builtins_ns = namespace.get("__builtins__", _BUILTINS)
    if isinstance(builtins_ns, ModuleType):
        builtins_ns = vars(builtins_ns)
    return any(n not in namespace and n not in builtins_ns for c in _codes(code) for n in c.co_names)


def missing_globals(code: CodeType, namespace: dict) -> list[str]:
    """Global names `code` reads that neither `namespace` nor builtins define."""
    if not _maybe_missing(code, namespace):
        return []
    builtins_ns = namespace.get("__builtins__", _BUILTINS)
    if isinstance(builtins_ns, ModuleType):
        builtins_ns = vars(builtins_ns)
    return sorted(n for n in global_reads(code) if n not in namespace and n not in builtins_ns)


def fill(namespace: dict, names: list[str], origin: ModuleType, where: str) -> list[str]:
    """setdefault each name that `origin` defines; returns the names filled."""
    filled = []
    source = vars(origin)
    for name in names:
        if name in source and namespace.setdefault(name, source[name]) is source[name]:
            filled.append(name)
    if filled:
        with _lock:
            _healed.extend((where, n, origin.__name__) for n in filled)
    return filled


def heal_function(fn: FunctionType, origin: ModuleType) -> list[str]:
    """Fill what `fn`'s globals lack from `origin` (the module its original lived in)."""
    if fn.__globals__ is vars(origin):
        return []
    names = missing_globals(fn.__code__, fn.__globals__)
    return fill(fn.__globals__, names, origin, f"{origin.__name__}:{fn.__qualname__}") if names else []


# Caches that keep repeated sweeps cheap; each is refreshed when what it summarises changes.
_origins: tuple[object, list[tuple[ModuleType, dict]]] = (None, [])  # keyed by sys.modules' size
# function -> (its code, names still missing after the last fill); holds class methods, which live anyway
_verdicts: dict[FunctionType, tuple[CodeType, frozenset[str]]] = {}


def _origin_namespaces() -> list[tuple[ModuleType, dict]]:
    global _origins
    stamp = (len(sys.modules), ORIGIN_PACKAGES)
    if _origins[0] != stamp or any(sys.modules.get(m.__name__) is not m for m, _ in _origins[1][:1]):
        found = [
            (m, vars(m))
            for name, m in list(sys.modules.items())
            if name.partition(".")[0] in ORIGIN_PACKAGES and isinstance(m, ModuleType)
        ]
        _origins = (stamp, found)
    return _origins[1]


def _heal_cached(fn: FunctionType, origin: ModuleType) -> list[str]:
    """heal_function, remembering per function what could not be filled, so sweeps stay cheap."""
    seen = _verdicts.get(fn)
    if seen is not None and seen[0] is fn.__code__:
        if not seen[1]:
            return []
        names = [n for n in seen[1] if n not in fn.__globals__]
    else:
        names = missing_globals(fn.__code__, fn.__globals__)
    filled = fill(fn.__globals__, names, origin, f"{origin.__name__}:{fn.__qualname__}") if names else []
    _verdicts[fn] = (fn.__code__, frozenset(n for n in names if n not in filled))
    return filled


# Snapshots of what a sweep found healthy, compared (in C, identity first) on the next sweep so
# that unchanged modules and classes cost a tuple build each: id -> (owner, tuple of values, extra).
_snapshots: dict[int, tuple] = {}


def _unchanged(owner: object, values: tuple) -> tuple | None:
    seen = _snapshots.get(id(owner))
    if seen is None or seen[0] is not owner:
        return None
    try:
        return seen if seen[1] == values else None
    except Exception:  # a value with an odd __eq__ (an array): treat as changed
        return None


def sweep() -> list[str]:
    """Heal every function on a watched library's class (or module) whose globals are foreign.

    Flat loops and snapshots on purpose: the loaded stack has about 14k class attributes after
    `import transformers.trainer`, and a sweep must stay within a few ms.
    """
    filled = []
    for module, own in _origin_namespaces():
        modname = module.__name__
        values = tuple(own.values())
        seen = _unchanged(own, values)
        if seen is not None:
            classes = seen[2]
        else:
            classes = []
            healthy = True
            for value in values:
                kind = type(value)
                if kind is FunctionType:
                    # A module-level function replaced by rebuilt code (`trl.trainer.x.f = f`); plain
                    # re-exports (`from .y import f`) come from real files and are left alone.
                    if value.__globals__ is not own and value.__code__.co_filename.startswith("<"):
                        filled += _heal_cached(value, module)
                        healthy = healthy and _clean(value)
                elif isinstance(value, type) and value.__module__ == modname:  # classes it defines
                    classes.append(value)
            if healthy:
                _snapshots[id(own)] = (own, values, classes)
        for cls in classes:
            attrs = tuple(vars(cls).values())
            if _unchanged(cls, attrs) is not None:
                continue
            healthy = True
            for attr in attrs:
                kind = type(attr)
                if kind is not FunctionType:
                    if kind is staticmethod or kind is classmethod:
                        attr = attr.__func__
                    elif kind is property:
                        attr = attr.fget
                    if type(attr) is not FunctionType:
                        continue
                if attr.__globals__ is not own and not _clean(attr):
                    filled += _heal_cached(attr, module)
                    healthy = healthy and _clean(attr)
            if healthy:
                _snapshots[id(cls)] = (cls, attrs, None)
    return filled


def _clean(fn: FunctionType) -> bool:
    seen = _verdicts.get(fn)
    return seen is not None and not seen[1] and seen[0] is fn.__code__


def _origin_for(code_name: str, name: str) -> ModuleType | None:
    """The origin module that defines `name` and a function `code_name` that reads it."""
    found = None
    for _module, ns in _origin_namespaces():
        if name not in ns:
            continue
        candidates = [ns.get(code_name)]
        candidates += [vars(v).get(code_name) for v in list(ns.values()) if isinstance(v, type)]
        for c in candidates:
            if type(c) in (staticmethod, classmethod):
                c = c.__func__
            if type(c) is FunctionType and name in global_reads(c.__code__):
                if found is not None and vars(found)[name] is not ns[name]:
                    return None  # ambiguous: leave it to the sweep, which knows the class
                found = sys.modules.get(ns.get("__name__", ""))
                break
    return found


def heal_code(code: CodeType, namespace: dict) -> list[str]:
    """Fill, into `namespace`, what the functions defined by `code` read and lack."""
    filled = []
    for fn_code in _codes(code):
        if fn_code is code:
            continue
        for name in missing_globals(fn_code, namespace):
            origin = _origin_for(fn_code.co_name, name)
            if origin is not None:
                filled += fill(namespace, [name], origin, f"<exec>:{fn_code.co_name}")
    return filled


# Code generators that exec strings for their own purposes (dataclasses, namedtuple, typing,
# torch.fx, the origin libraries themselves) never rebuild another library's function.
_STDLIB = os.path.dirname(os.__file__) + os.sep
_SITE = _STDLIB + "site-packages"  # a non-venv interpreter keeps third-party code under the stdlib
_NOT_REBUILDERS = {*ORIGIN_PACKAGES, "torch", "attr", "jinja2", "pydantic", "triton", "sympy"}


def _audit(event: str, args: tuple) -> None:
    # Called for every audit event of the process: keep the common path tiny.
    if event != "exec":
        return
    code = args[0]
    if type(code) is not CodeType or not code.co_filename.startswith("<"):
        return  # module imports exec real files; only source-string rebuilds matter
    try:
        caller = sys._getframe(1)
        filename = caller.f_code.co_filename
        if filename.startswith(_STDLIB) and not filename.startswith(_SITE):
            return
        namespace = caller.f_globals  # `exec(src, globals())`, the rebuilders' pattern, targets it
        if str(namespace.get("__name__")).partition(".")[0] in _NOT_REBUILDERS:
            return
        if _maybe_missing(code, namespace):
            heal_code(code, namespace)
    except Exception:  # the audit hook must never break the caller's exec
        pass


_audit_installed = False


def install_audit_hook() -> None:
    global _audit_installed
    with _lock:
        if not _audit_installed:
            sys.addaudithook(_audit)
            _audit_installed = True


def healed() -> list[tuple[str, str, str]]:
    with _lock:
        return list(_healed)
