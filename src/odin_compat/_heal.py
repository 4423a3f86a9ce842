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


def _origin_modules() -> list[ModuleType]:
    return [
        m
        for name, m in list(sys.modules.items())
        if isinstance(m, ModuleType) and name.partition(".")[0] in ORIGIN_PACKAGES
    ]


def _functions(obj: object) -> Iterator[FunctionType]:
    for value in list(vars(obj).values()):
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, property):
            yield from (f for f in (value.fget, value.fset, value.fdel) if isinstance(f, FunctionType))
            continue
        if isinstance(value, FunctionType):
            yield value


def sweep() -> list[str]:
    """Heal every function on a watched library's class (or module) whose globals are foreign."""
    filled = []
    for module in _origin_modules():
        own = vars(module)
        modname = module.__name__
        for value in list(own.values()):
            if isinstance(value, FunctionType):
                # A module-level function replaced by rebuilt code (`trl.trainer.x.f = f`); plain
                # re-exports (`from .y import f`) are real files and are left alone.
                if value.__globals__ is not own and value.__code__.co_filename.startswith("<"):
                    filled += heal_function(value, module)
            elif isinstance(value, type) and value.__module__ == modname:  # classes this module defines
                for fn in _functions(value):
                    if fn.__globals__ is not own:
                        filled += heal_function(fn, module)
    return filled


def _origin_for(code_name: str, name: str) -> ModuleType | None:
    """The watched module that defines `name` and a function `code_name` that reads it."""
    found = None
    for module in _origin_modules():
        ns = vars(module)
        if name not in ns:
            continue
        candidates = [ns.get(code_name)]
        candidates += [vars(v).get(code_name) for v in list(ns.values()) if isinstance(v, type)]
        for c in candidates:
            if isinstance(c, (staticmethod, classmethod)):
                c = c.__func__
            if isinstance(c, FunctionType) and name in global_reads(c.__code__):
                if found is not None and vars(found)[name] is not ns[name]:
                    return None  # ambiguous: leave it to the sweep, which knows the class
                found = module
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


def _audit(event: str, args: tuple) -> None:
    # Called for every audit event of the process: keep the common path tiny.
    if event != "exec":
        return
    code = args[0]
    if not isinstance(code, CodeType) or not code.co_filename.startswith("<"):
        return  # module imports exec real files; only source-string rebuilds matter
    try:
        namespace = sys._getframe(1).f_globals  # the caller of exec(); its globals() is the usual target
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
