"""Post-import hooks: run callbacks when a watched module finishes executing.

A small meta-path finder in the spirit of wrapt's `importer.py`: it asks the
other finders for the spec, chains the loader's `exec_module`, and after the
module's own code has run, calls the callbacks registered for that module name.
`importlib.reload` finds the spec again, so a reloaded module's callbacks run again.

Design points (each learnt from wrapt's bug history):
- `find_spec`/`exec_module` only (Python 3.12 dropped `find_module`);
- the spec keeps the real loader: a file loader (made for this one module) gets
  `exec_module` chained on the instance, and the instance attribute is removed
  before the module's code runs, so `importlib.util.find_spec(name).loader` is
  the `SourceFileLoader` it always was (`isinstance`, `get_source`,
  `get_resource_reader` ...) and `module.__loader__` looks untouched;
- any other loader (possibly shared by many modules) is wrapped in a proxy that
  answers `isinstance` like the loader, and is put back on the module and its
  spec before the module's code runs;
- callbacks run with none of odin's locks held (a callback may import);
- only the loaders of modules that something watches are chained or wrapped,
  so everything else imports exactly as before.
"""

from __future__ import annotations

import sys
from _thread import allocate_lock

TYPE_CHECKING = False
if TYPE_CHECKING:  # importlib.abc and typing cost ~35 ms: keep them out of `import odin_compat`
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    Callback = Callable[[str], None]

_lock = allocate_lock()
_exact: dict[str, list[Callback]] = {}
_prefix: dict[str, list[Callback]] = {}  # top-level package -> callbacks for every module in it
_first: dict[str, Callback] = {}  # top-level package -> called once, as its first import begins
_on_find: list[Callable[[], None]] = []  # cheap checks run as an import in a watched library starts
# The top-level packages of everything above: an import outside them (torch, numpy, ... about
# 85% of the training stack's imports) is answered with one set look-up.
_tops: frozenset[str] = frozenset()


def _retop() -> None:  # under _lock, after any table changed
    global _tops
    _tops = frozenset({n.partition(".")[0] for n in _exact} | set(_prefix) | set(_first))


def watch(name: str, callback: Callback, *, package: bool = False) -> None:
    """Call `callback(name)` when `name` (or, with package=True, any module of it) has loaded."""
    with _lock:
        table = _prefix if package else _exact
        table[name] = [*table.get(name, ()), callback]  # a new list: readers never see it change
        _retop()


def before_first(top: str, callback: Callback) -> None:
    """Call `callback(top)` once, when the first import of package `top` begins (before it runs).

    Its callbacks can then still watch modules that the package imports while it executes.
    """
    with _lock:
        _first[top] = callback
        _retop()


def on_find(check: Callable[[], None]) -> None:
    """Run `check()` as each import of a module in a watched library starts (including the
    failed-attribute fallback of `from package import name`). It must be cheap."""
    with _lock:
        _on_find[:] = [*_on_find, check]


def warn(message: str, stacklevel: int = 2) -> None:
    """Containment's warning: under `-W error` (pytest's filterwarnings=error) it must not turn
    into the exception that containment exists to prevent, so it falls back to stderr."""
    import warnings

    try:
        warnings.warn(message, RuntimeWarning, stacklevel=stacklevel + 1)
    except Exception:
        sys.stderr.write(f"RuntimeWarning: {message}\n")


def _run_first(top: str) -> None:
    with _lock:
        callback = _first.pop(top, None)
        _retop()
    if callback is None:
        return
    try:  # containment: the import itself must go on
        callback(top)
    except Exception as exc:
        warn(f"odin_compat: preparing repairs for {top} failed: {exc!r}")


# Bumped at every import that reaches the finders (a module deleted from sys.modules and imported
# again, a reload): the healer's cue that the origin modules may have changed.
finds = 0


def _chain(loader: object, callbacks: list[Callback]) -> bool:
    """Chain `exec_module` on the loader instance itself, so the spec keeps the real loader.

    Only for a file loader: one instance per module found, so no other module sees the chain.
    """
    if not isinstance(loader, _FileLoader):
        return False
    own = getattr(loader, "__dict__", None)
    if own is None:
        return False
    if "exec_module" in own:
        return getattr(own["exec_module"], "__odin_hook__", False)  # chained already (a reused spec)
    real = loader.exec_module  # type: ignore[attr-defined]

    def exec_module(module: ModuleType) -> None:
        if own.get("exec_module") is exec_module:
            del own["exec_module"]  # the loader is untouched again before the module's code runs
        real(module)
        for callback in callbacks:
            callback(module.__name__)

    exec_module.__odin_hook__ = True  # type: ignore[attr-defined]
    own["exec_module"] = exec_module
    return True


# importlib.machinery's file loaders (source, bytecode, extension) without importing importlib.
_FileLoader = getattr(sys.modules.get("_frozen_importlib_external"), "FileLoader", None) or type(None)


class _Loader:
    """Wraps a loader that may serve other modules too; delegates everything but `exec_module`,
    and answers `isinstance` (through `__class__`) as the loader does."""

    def __init__(self, loader: object, callbacks: list[Callback]) -> None:
        self._loader = loader
        self._callbacks = callbacks

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._loader)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[attr-defined]

    def exec_module(self, module: ModuleType) -> None:
        # Put the original loader back before the module's own code can look at it.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        for callback in self._callbacks:
            callback(module.__name__)


class _Finder:
    """A meta-path finder (the protocol, without importlib.abc's import cost)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        global finds
        finds += 1
        top = fullname.partition(".")[0]
        if top not in _tops:
            return None  # nothing is watched in this library
        for check in _on_find:
            try:
                check()
            except Exception:  # containment: the import itself must go on
                pass
        if _first and top in _first:  # lock-free reads; _run_first pops under the lock
            _run_first(top)
        exact = _exact.get(fullname)
        prefix = _prefix.get(top)
        if exact is None and prefix is None:
            return None
        callbacks = [*(exact or ()), *(prefix or ())]
        for finder in list(sys.meta_path):
            if isinstance(finder, _Finder):
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module") or type(loader) is _Loader:
            return spec  # namespace package or legacy loader (or ours already): leave it alone
        if not _chain(loader, callbacks):
            spec.loader = _Loader(loader, callbacks)
        return spec


def install() -> bool:
    """Put the finder first on sys.meta_path once; True if it was added now."""
    with _lock:
        if any(isinstance(f, _Finder) for f in sys.meta_path):
            return False
        sys.meta_path.insert(0, _Finder())
        return True


def uninstall() -> None:
    with _lock:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]
