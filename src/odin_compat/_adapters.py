"""Keyword adapters: wrappers that translate the keywords a caller passes before upstream's callable
runs, and that reach subclasses which define their own `__init__`."""

from __future__ import annotations

from _thread import allocate_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_warned: set[str] = set()
_warned_lock = allocate_lock()


def warn_once(key: str, message: str, category: type[Warning] = FutureWarning) -> None:
    """Warn once per process for `key` (deprecated spellings that an adapter translates)."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    import warnings

    warnings.warn(message, category, stacklevel=3)


def accepts(func: Callable, param: str) -> bool:
    """True when `func` takes keyword `param` by name; a bare **kwargs does not count.

    Follows `__wrapped__`, so an odin adapter reports the upstream signature.
    """
    return accepting(func)(param)


def _unknown(param: str) -> bool:
    return True  # cannot tell: do not adapt


_FunctionType = type(_unknown)


def accepting(func: Callable) -> Callable[[str], bool]:
    """`accepts(func, name)` for many names, reading the signature once (a dataclass `__init__`
    such as TrainingArguments' has ~150 parameters: each `inspect.signature` costs ~0.1 ms)."""
    import inspect

    from odin_compat import _registry

    try:
        if _registry._applying[0] and type(func) is _FunctionType:
            # While records apply, each record that wraps TrainingArguments.__init__ would read the
            # same ~150 parameters again: keep them by the function whose signature
            # `inspect.signature` reads in the end (where it stops unwrapping), until apply_for returns.
            inner = inspect.unwrap(func, stop=_signature_stop)
            if type(inner) is _FunctionType:
                takes = _registry._keywords.get(inner)
                if takes is None:
                    takes = _registry._keywords[inner] = _keywords(inspect.signature(inner))
                return takes
        return _keywords(inspect.signature(func))
    except (TypeError, ValueError):
        return _unknown


def _signature_stop(f: object) -> bool:
    """Where `inspect.signature` stops following `__wrapped__` (Python 3.10 to 3.13 alike)."""
    import types

    return hasattr(f, "__signature__") or isinstance(f, types.MethodType)


def _keywords(signature: object) -> Callable[[str], bool]:
    params = signature.parameters  # type: ignore[attr-defined]
    return {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}.__contains__


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
