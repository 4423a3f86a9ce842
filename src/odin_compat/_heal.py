"""The healer: give functions rebuilt from another library's source the globals they lack.

Libraries such as unsloth take a function's source (`inspect.getsource`), edit it, and `exec`
it into their own namespace, or write it into a generated module (`unsloth_compiled_cache`).
The new function resolves globals at call time in *its* namespace, so a name the original's
module imported but the rebuilder's does not raises `NameError` (the FP8 report's
`File "<string>", line 135, in prepare`).

The repair, under three rules that keep everyone else's code as it is:
- only a function *derived* from an origin function is healed: same name, same parameters,
  and at least half of the origin's names still in its code (`derived`);
- only names the origin function itself reads are filled, with the origin's own values, and
  only where the rebuilt function's namespace lacks them (`dict.setdefault`): a read that
  would raise NameError changes, nothing else does;
- the namespace filled is exactly the rebuilt function's `__globals__`.

Triggers, so the repair is in place before rebuilt code first runs:
- an audit hook on `exec` (of anything but a module being imported) spots derived functions
  in the code about to run, at any depth (in a class body, returned by a factory function),
  and heals the namespace that `exec` really runs in as soon as that code starts (a one-shot
  profile function reads it from the frame; nothing else is traced);
- when a module of a rebuilder package (generated files included) finishes importing, its
  derived functions are healed before anything can patch or call them;
- `sweep()` heals derived functions found on the origin libraries' classes and modules (a
  rebuild that happened while another profiler was running); it runs after each rebuilder
  import and as `odin_compat.heal()`.
"""

from __future__ import annotations

import builtins
import sys
from _thread import RLock

from odin_compat import _hook
from odin_compat._stack import ORIGINS as ORIGIN_PACKAGES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# The types, without importing `types` (keeps `import odin_compat` cheap).
CodeType = type((lambda: 0).__code__)
FunctionType = type(lambda: 0)
ModuleType = type(sys)

_LOAD_OPS = {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"}
_CACHE_MAX = 4096  # every cache below is cleared past this size: exec-heavy programs stay bounded
_reads_cache: dict[CodeType, frozenset[str]] = {}
_healed: list[tuple[str, str, str]] = []  # (where, name, origin module), for report()
_lock = RLock()  # re-entrant: foreign code run under it (isinstance, __eq__) may exec again
_BUILTINS = vars(builtins)


def _codes(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _codes(const)


def _bounded_put(cache: dict, key: object, value: object) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


def global_reads(code: CodeType) -> frozenset[str]:
    """Names that `code` (and the code nested in it) looks up as globals."""
    cached = _reads_cache.get(code)
    if cached is None:
        import dis  # lazily: only candidate rebuilt code gets here

        names = set()
        for c in _codes(code):
            names.update(i.argval for i in dis.get_instructions(c) if i.opname in _LOAD_OPS)
        cached = frozenset(names)
        _bounded_put(_reads_cache, code, cached)
    return cached


def _restricted(namespace: dict) -> bool:
    """True for a namespace given its own `__builtins__` (a sandbox), not the interpreter's."""
    ns = namespace.get("__builtins__", builtins)
    return ns is not builtins and ns is not _BUILTINS


def _builtins_of(namespace: dict) -> dict:
    ns = namespace.get("__builtins__", _BUILTINS)
    return vars(ns) if isinstance(ns, ModuleType) else ns


def missing_globals(code: CodeType, namespace: dict) -> list[str]:
    """Global names `code` reads that neither `namespace` nor builtins define."""
    builtins_ns = _builtins_of(namespace)
    # co_names is a superset of the global reads and needs no disassembly: filter on it first.
    if all(n in namespace or n in builtins_ns for c in _codes(code) for n in c.co_names):
        return []
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
    """Fill what `fn`'s globals lack from `origin`, a module the caller names explicitly."""
    if fn.__globals__ is vars(origin):
        return []
    names = missing_globals(fn.__code__, fn.__globals__)
    return fill(fn.__globals__, names, origin, f"{origin.__name__}:{fn.__qualname__}") if names else []


# --- derivation: which origin function a rebuilt one came from ---------------------------------

_ARG_FLAGS = 0x04 | 0x08  # CO_VARARGS | CO_VARKEYWORDS


def _parameters(code: CodeType) -> tuple:
    n = code.co_argcount + code.co_kwonlyargcount + bin(code.co_flags & _ARG_FLAGS).count("1")
    return (
        code.co_posonlyargcount,
        code.co_argcount,
        code.co_kwonlyargcount,
        code.co_flags & _ARG_FLAGS,
        code.co_varnames[:n],
    )


_names_cache: dict[CodeType, frozenset[str]] = {}


def _names(code: CodeType) -> frozenset[str]:
    names = _names_cache.get(code)
    if names is None:
        names = frozenset(n for c in _codes(code) for n in c.co_names)
        _bounded_put(_names_cache, code, names)
    return names


def derived(code: CodeType, origin: FunctionType) -> bool:
    """True when `code` was rebuilt from `origin`'s source: the same name and parameters, and at
    least half of the names the origin's code uses (globals and attributes) still in it."""
    return _derived_code(code, origin.__code__)


# An origin this small (`return len(fields(self))`) is too generic to prove anything: a user's
# own one-liner may match it by chance.
_MIN_PROOF_NAMES = 4


def _derived_code(code: CodeType, ocode: CodeType) -> bool:
    if code.co_name != ocode.co_name or _parameters(code) != _parameters(ocode):
        return False
    theirs = _names(ocode)
    return len(theirs) >= _MIN_PROOF_NAMES and 2 * len(theirs & _names(code)) >= len(theirs)


# Genuine origin functions (defined in a real file of an origin library, with that module's
# globals) by code name. They stay indexed after a rebuilder replaces them on their class, so
# a later sweep can still prove where a replacement came from; they are dropped once their
# module has left sys.modules or has been executed again (`del sys.modules[m]`, a reload).
_index: dict[str, list[FunctionType]] = {}
_index_fns: set[FunctionType] = set()  # the same functions (hashed by identity: no id(), an audit event)
_indexed: dict[int, dict] = {}  # id(module dict) -> the dict (kept while indexed, so ids are not reused)
# id(module dict) -> its __spec__ when indexed: a new one means the module was executed again
# (importlib.reload); and -> the code names indexed from it, to find its functions in _index.
# Flat dicts and tuples of strings (which the GC stops tracking): the index adds as few objects
# as it can to the collector's pending work (a full collection that it tipped over would land
# in the caller's code).
_indexed_spec: dict[int, object] = {}
_indexed_names: dict[int, tuple[str, ...]] = {}
_index_stamp: tuple = ()
_live: list[dict] = []  # the origin modules' dicts in sys.modules now
# module name -> (its dict, its spec) when the index last found that dict indexed with that spec: the
# same pair again needs no id() (an audit event) and no look-ups; cleared with every `_forget`.
_current: dict[str, tuple[dict, object]] = {}
# ORIGIN_PACKAGES -> {module name -> whether it belongs to one of them} (sys.modules holds ~4,000
# names, ~500 of them in the origin packages)
_origin_names: dict[tuple, dict[str, bool]] = {}
_NAMES_MAX = 65536
# The last scan: (ORIGIN_PACKAGES, sys.modules' names, the origin modules' names among them, in order).
# sys.modules mostly grows at its end between scans: then only the names added need classifying.
_scanned: tuple = ((), [], [])


def _stamp() -> tuple:
    """Changes whenever the origin modules may have: a module added or removed, or any import
    reaching the finders (a module deleted and imported again keeps the count, not this).
    `_audit` spells it out inline (the exec path)."""
    return (len(sys.modules), _hook.finds, ORIGIN_PACKAGES)


def _functions_of(own: dict, modname: str) -> Iterator[FunctionType]:
    for value in list(own.values()):
        if type(value) is FunctionType:
            yield value
        elif isinstance(value, type) and value.__module__ == modname:
            for attr in list(vars(value).values()):
                kind = type(attr)
                if kind is staticmethod or kind is classmethod:
                    attr = attr.__func__
                elif kind is property:
                    attr = attr.fget
                if type(attr) is FunctionType:
                    yield attr


def _forget(dicts: list[dict]) -> None:
    """Drop the functions of these module dicts from the index, and every cache that holds them."""
    ids = {id(d) for d in dicts}  # the dicts are alive (the caller holds them): their ids are theirs
    names = {n for key in ids for n in _indexed_names.get(key, ())}
    for name in names:
        fns = _index.get(name, [])
        keep = [fn for fn in fns if id(fn.__globals__) not in ids]
        _index_fns.difference_update(fn for fn in fns if id(fn.__globals__) in ids)
        if keep:
            _index[name] = keep
        else:
            _index.pop(name, None)
    for key in ids:
        _indexed.pop(key, None)
        _indexed_spec.pop(key, None)
        _indexed_names.pop(key, None)
    _derivations.clear()
    _snapshots.clear()
    _current.clear()


def _refresh_index() -> None:
    global _index_stamp, _scanned
    stamp = _stamp()
    if stamp == _index_stamp:
        return
    with _lock:
        live, unfinished, indexed = [], False, 0
        origin = _origin_names.get(ORIGIN_PACKAGES)
        if origin is None:  # the packages changed (a test adds one): ask every name again
            _origin_names.clear()
            origin = _origin_names[ORIGIN_PACKAGES] = {}
        modules = sys.modules
        # The names first (no (name, module) tuple per entry: ~4,000 tracked objects at once tip
        # the collector over), then only the origin modules' names, in sys.modules' order.
        names = list(modules)
        packages, before, origin_before = _scanned
        if packages == ORIGIN_PACKAGES and names[: len(before)] == before:
            fresh, ours = names[len(before) :], origin_before
        else:
            fresh, ours = names, []
        new = set(fresh).difference(origin)
        if new:
            if len(origin) + len(new) > _NAMES_MAX:
                origin.clear()
                new = fresh
            for name in new:
                origin[name] = name.partition(".")[0] in ORIGIN_PACKAGES
        ours = ours + list(filter(origin.get, fresh))
        _scanned = (ORIGIN_PACKAGES, names, ours)
        for name in ours:
            module = modules.get(name)
            if module is None or not isinstance(module, ModuleType):
                continue
            own = vars(module)
            live.append(own)
            spec = own.get("__spec__")
            current = _current.get(name)
            if current is not None and current[0] is own and current[1] is spec:
                indexed += 1  # indexed already, with this spec (what the look-ups below would find)
                continue
            key = id(own)
            seen = _indexed.get(key) is own
            if seen and _indexed_spec.get(key) is spec:
                indexed += 1
                _current[name] = (own, spec)
                continue
            if getattr(spec, "_initializing", False):
                unfinished = True  # still executing: index it once it is complete
                continue
            if seen:
                _forget([own])  # executed again (importlib.reload): its new functions replace the old
            _indexed[key] = own
            indexed += 1
            code_names = []
            for fn in _functions_of(own, name):
                if fn.__globals__ is not own or fn in _index_fns:
                    continue
                code = fn.__code__  # each read of __code__ is an audit event
                if code.co_filename[:1] != "<":
                    _index_fns.add(fn)
                    _index.setdefault(code.co_name, []).append(fn)
                    code_names.append(code.co_name)
            _indexed_spec[key] = spec
            _indexed_names[key] = tuple(code_names)
            _current[name] = (own, spec)
        if len(_indexed) != indexed:  # some left sys.modules (deleted, maybe imported again anew)
            live_ids = {id(own) for own in live}
            _forget([own for key, own in _indexed.items() if key not in live_ids])
        _live[:] = live
        _index_stamp = () if unfinished else stamp


def _is_live(fn: FunctionType) -> bool:
    module = sys.modules.get(fn.__globals__.get("__name__", ""))
    return module is not None and vars(module) is fn.__globals__


# rebuilt code -> (index stamp, its origin functions), asked again once more modules have loaded
_derivations: dict[CodeType, tuple[tuple, list[FunctionType]]] = {}


def origins_of(code: CodeType) -> list[FunctionType]:
    """The genuine origin functions that `code` was rebuilt from (usually one; empty: not a rebuild)."""
    _refresh_index()
    return _origins(code)


def _origins(code: CodeType) -> list[FunctionType]:
    """`origins_of` against the index as it is (the caller has just refreshed it)."""
    seen = _derivations.get(code)
    if seen is not None and seen[0] == _index_stamp:
        return seen[1]
    params = _parameters(code)
    found = [
        fn
        for fn in _index.get(code.co_name, ())
        if fn.__code__ is not code
        and _parameters(fn.__code__) == params
        and derived(code, fn)
        and _is_live(fn)
    ]
    _bounded_put(_derivations, code, (_index_stamp, found))
    return found


def heal_derived(
    code: CodeType, namespace: dict, where: str, origins: list[tuple[CodeType, dict]] | None = None
) -> list[str]:
    """Fill into `namespace` (the rebuilt function's globals) what `code` reads and lacks, from
    the origin function(s) it was rebuilt from: only names those read, only where they agree.
    `origins` are (origin code, origin globals) pairs; by default, the indexed origin functions."""
    if _restricted(namespace):
        return []  # a deliberate sandbox: nothing from outside goes in
    if origins is None:
        origins = [(fn.__code__, fn.__globals__) for fn in origins_of(code)]
    if not origins:
        return []
    filled = []
    for name in missing_globals(code, namespace):
        values = {id(ns[name]): ns for ocode, ns in origins if name in ns and name in global_reads(ocode)}
        if len(values) == 1:  # two origins that disagree on the value: leave it alone
            origin_ns = next(iter(values.values()))
            module = sys.modules.get(origin_ns.get("__name__", ""))
            if module is not None and vars(module) is origin_ns:
                filled += fill(namespace, [name], module, f"{where}:{code.co_name}")
    return filled


_source_codes: dict[str, CodeType] = {}  # origin module file -> its compiled code


def origin_from_source(module: ModuleType, owner: str, name: str) -> CodeType | None:
    """The code of `owner.name` (`owner` a class of `module`, or "" for a module-level function)
    compiled from the module's file on disk: proof of what a function that is gone looked like
    (odin imported after a rebuilder had already replaced it)."""
    path = getattr(module, "__file__", None) or ""
    if not path.endswith(".py"):
        return None
    code = _source_codes.get(path)
    if code is None:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec", dont_inherit=True)
        _bounded_put(_source_codes, path, code)
    if owner:
        bodies = [c for c in code.co_consts if type(c) is CodeType and c.co_name == owner]
        if len(bodies) != 1:
            return None
        code = bodies[0]
    found = [c for c in code.co_consts if type(c) is CodeType and c.co_name == name]
    return found[0] if len(found) == 1 else None


# --- trigger 1: exec of code that is not a module being imported --------------------------------

# Code generators that exec strings for their own purposes (dataclasses, namedtuple, typing,
# torch.fx, the origin libraries themselves) never rebuild another library's function.
_NOT_REBUILDERS = {*ORIGIN_PACKAGES, "torch", "attr", "jinja2", "pydantic", "triton", "sympy", "mpmath"}
_STDLIB_NAMES = getattr(sys, "stdlib_module_names", frozenset())  # Python >= 3.10
# The namespace from which the import system execs a module's code (generated modules included:
# they are healed as they finish importing). Its identity, not its `__name__`: importing
# `importlib` renames `_frozen_importlib` to `importlib._bootstrap`.
_IMPORT_SYSTEM = vars(sys.modules["_frozen_importlib"]) if "_frozen_importlib" in sys.modules else None


def _heal_when_started(code: CodeType, rebuilt: list[CodeType]) -> None:
    """Heal the namespace `code` is about to run in, at its first profile event: `exec` has
    set up the frame (so its globals are known) and none of its code has run yet."""
    if sys.getprofile() is not None:
        return  # another profiler is running: leave it alone; the sweep heals what is patched in

    def profile(frame: object, event: str, arg: object) -> None:
        sys.setprofile(None)  # one event only: nothing else is ever traced
        if frame.f_code is not code:  # type: ignore[attr-defined]
            return
        namespace = frame.f_globals  # type: ignore[attr-defined]
        try:
            for c in rebuilt:
                heal_derived(c, namespace, "<exec>")
        except Exception:  # the healer must never break the caller's exec
            pass

    sys.setprofile(profile)


def _nested(code: CodeType) -> list[CodeType]:
    """The code objects inside `code` at any depth: its functions, class bodies and their methods,
    the functions that a factory function defines."""
    found, stack = [], [code]
    while stack:
        for c in stack.pop().co_consts:
            if type(c) is CodeType:
                found.append(c)
                stack.append(c)
    return found


_getframe = sys._getframe
# caller's module name -> True: never a rebuilder (the standard library, the origin libraries and
# other code generators); False: look at the code. The caller is found by its globals' `__name__`:
# `frame.f_code` is itself an audit event, and every event costs each one of them a hook call.
_skipped_callers: dict[object, bool] = {}  # the compiled hook reads this very dict: never rebind it


def _skips(caller: object) -> bool:
    top = str(caller).partition(".")[0]
    return top in _STDLIB_NAMES or top in _NOT_REBUILDERS


def _audit(event: str, args: tuple) -> None:
    # Called for every audit event of the process: keep the common path tiny.
    if event != "exec":
        return
    code = args[0]
    if type(code) is not CodeType:
        return
    try:
        # The caller first: one frame look-up (itself an audit event) rejects the modules being
        # imported and the standard library's code generators (dataclasses alone execs ~5,000
        # times while the stack imports), before any walk of the code.
        namespace = _getframe(1).f_globals
        if namespace is _IMPORT_SYSTEM:
            filename = code.co_filename
            if filename[:1] != "<" or filename.startswith("<frozen "):
                return  # a module being imported, from its file or frozen into the interpreter
        else:
            caller = namespace.get("__name__")
            skip = _skipped_callers.get(caller)
            if skip is None:
                skip = _skips(caller)
                _bounded_put(_skipped_callers, caller, skip)
            if skip:
                return
        nested = _nested(code)
        if (len(sys.modules), _hook.finds, ORIGIN_PACKAGES) == _index_stamp and not any(
            c.co_name in _index for c in nested
        ):
            return  # the index is current and no function here is named like an origin function
        # One refresh for all the code here: while an origin module is still executing, each
        # refresh rescans sys.modules, and nothing imports between these look-ups.
        _refresh_index()
        rebuilt = [c for c in nested if c.co_name in _index and _origins(c)]
        if rebuilt:
            _heal_when_started(code, rebuilt)
    except Exception:  # the audit hook must never break the caller's exec
        pass


_audit_installed = ""  # which hook is in place: "compiled", "python", or "" (none yet)


def install_audit_hook() -> None:
    """Install the exec trigger once per process: the compiled hook, which answers every event but
    `exec`, and the exec of a module being imported or by a caller already ruled out, as `_audit`
    would, and calls `_audit` for the rest; or, where it was not built, `_audit` itself for every
    event (the same behaviour, slower for the stack's imports: docs/benchmarks.md)."""
    global _audit_installed
    with _lock:
        if _audit_installed:
            return
        try:
            from odin_compat._audit import install
        except ImportError:
            sys.addaudithook(_audit)
            _audit_installed = "python"
        else:
            install(_audit, _IMPORT_SYSTEM, _skipped_callers)  # answers the common cases itself
            _audit_installed = "compiled"


def audit_hook() -> str:
    """Which exec hook this process runs: "compiled", "python", or "" before odin activated."""
    return _audit_installed


# --- trigger 2: a rebuilder's module (generated files included) has imported --------------------


def heal_module(module: ModuleType) -> list[str]:
    """Heal the functions a rebuilder module defines that are derived from origin functions,
    before anything patches them onto a class or calls them."""
    own = vars(module)
    filled = []
    for fn in _functions_of(own, module.__name__):
        if fn.__globals__ is own:
            filled += heal_derived(fn.__code__, own, module.__name__)
    return filled


# --- trigger 3: the sweep -----------------------------------------------------------------------

# function -> its code, when a sweep found nothing left to fill (refreshed when the code changes)
_clean: dict[FunctionType, CodeType] = {}


def _heal_found(fn: FunctionType, module: ModuleType, owner: str, name: str) -> list[str]:
    """Heal `fn`, found as `owner.name` of origin `module` with foreign globals, if it is derived
    from the origin function: one still indexed, or else the one in the module's source file."""
    if _clean.get(fn) is fn.__code__:
        return []
    code = fn.__code__
    origins = [(o.__code__, o.__globals__) for o in origins_of(code)]
    if not origins and not missing_globals(code, fn.__globals__):
        _bounded_put(_clean, fn, code)
        return []
    if not origins:
        try:
            source = origin_from_source(module, owner, name)
        except (OSError, SyntaxError, ValueError):
            source = None
        if source is not None and _derived_code(code, source):
            origins = [(source, vars(module))]
    where = f"{module.__name__}.{owner}" if owner else module.__name__
    filled = heal_derived(code, fn.__globals__, where, origins)
    _bounded_put(_clean, fn, code)  # healed as far as the proof goes: never asked again for this code
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
    """Heal derived functions with foreign globals found on an origin library's classes and modules.

    Flat loops and snapshots on purpose: the loaded stack has about 14k class attributes after
    `import transformers.trainer`, and a sweep must stay within a few ms.
    """
    _refresh_index()
    filled = []
    for own in list(_live):
        modname = own.get("__name__", "")
        module = sys.modules.get(modname)
        values = tuple(own.values())
        seen = _unchanged(own, values)
        if seen is not None:
            classes = seen[2]
        else:
            classes = []
            healthy = True
            for key, value in list(own.items()):
                if type(value) is FunctionType:
                    # A module-level function replaced by rebuilt code (`trl.trainer.x.f = f`).
                    if value.__globals__ is not own and module is not None:
                        filled += _heal_found(value, module, "", key)
                        healthy = healthy and _clean.get(value) is value.__code__
                elif isinstance(value, type) and value.__module__ == modname:  # classes it defines
                    classes.append(value)
            if healthy:
                _snapshots[id(own)] = (own, values, classes)
        for cls in classes:
            attrs = tuple(vars(cls).values())
            if _unchanged(cls, attrs) is not None:
                continue
            healthy = True
            for attr_name, attr in list(vars(cls).items()):
                kind = type(attr)
                if kind is not FunctionType:
                    if kind is staticmethod or kind is classmethod:
                        attr = attr.__func__
                    elif kind is property:
                        attr = attr.fget
                    if type(attr) is not FunctionType:
                        continue
                if attr.__globals__ is not own and module is not None:
                    filled += _heal_found(attr, module, cls.__qualname__, attr_name)
                    healthy = healthy and _clean.get(attr) is attr.__code__
            if healthy:
                _snapshots[id(cls)] = (cls, attrs, None)
    return filled


def healed() -> list[tuple[str, str, str]]:
    with _lock:
        return list(_healed)
