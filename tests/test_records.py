"""Records: when they apply, containment, and never replacing upstream's objects."""

from __future__ import annotations

import sys
import types

import pytest

from odin_compat import _adapters, _registry, records
from odin_compat._registry import apply, why_applies
from odin_compat.records import Record


def make(**overrides) -> Record:
    fields = dict(
        id="test-record", module="fake_target", name="thing", kind="backport", fixes="ImportError: thing",
        affects="fake<2", upstream="https://example.invalid/pr/1", remove_when="never",
        provide=lambda module: "backported",
    )  # fmt: skip
    fields.update(overrides)
    return Record(**fields)


def test_backport_applies_only_when_absent() -> None:
    module = types.ModuleType("fake_target")
    assert apply(make(), module).status == "applied"
    assert module.thing == "backported"
    upstream = object()
    module.thing = upstream
    assert apply(make(), module).status == "skipped"
    assert module.thing is upstream  # identity: upstream's object untouched


def test_lazy_module_getattr_does_not_count_as_present() -> None:
    module = types.ModuleType("fake_target")
    module.__getattr__ = lambda name: "lazy"  # transformers-style lazy module
    assert why_applies(make(), module) is not None


def test_dotted_names_reach_class_attributes() -> None:
    module = types.ModuleType("fake_target")
    module.Klass = type("Klass", (), {})
    apply(make(name="Klass.method", provide=lambda m: staticmethod(lambda: 42)), module)
    assert module.Klass.method() == 42


def test_a_failing_record_warns_and_is_contained() -> None:
    def boom(module):
        raise RuntimeError("provider broke")

    module = types.ModuleType("fake_target")
    with pytest.warns(RuntimeWarning, match="test-record.*provider broke"):
        outcome = apply(make(provide=boom), module)
    assert outcome.status == "failed"
    assert "thing" not in vars(module)


def test_kwarg_records_ask_their_predicate() -> None:
    module = types.ModuleType("fake_target")
    module.thing = lambda a: a
    rec = make(kind="kwarg", needed=lambda m: True, provide=lambda m: lambda a, b=None: a)
    assert apply(rec, module).status == "applied"
    assert apply(make(kind="kwarg", needed=lambda m: False), module).status == "skipped"


def test_record_validation() -> None:
    with pytest.raises(ValueError):
        make(kind="nonsense")
    with pytest.raises(ValueError):
        records.record("x", "no_colon", kind="alias", fixes="", upstream="", remove_when="", affects="")


def test_the_working_side_is_derived_from_the_one_range() -> None:
    assert (make().works, make().breaks) == ("fake>=2", "fake<2")
    assert make(affects="fake>=1.0", note="(with bar)").breaks == "fake>=1.0 (with bar)"
    assert make(affects="fake").works == "no fake release"
    # records written in the older form keep their texts
    assert make(works="fake>=2 (old text)", breaks="fake<2 (old)").works == "fake>=2 (old text)"


def test_the_decorator_registers_one_record_per_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _registry.Registry()
    monkeypatch.setattr(records, "REGISTRY", registry)
    seen = []

    @records.record("a", "fake_target:thing", kind="backport", fixes="E", upstream="u", remove_when="r",
                    affects="fake<2", proof="test_x::test_y")  # fmt: skip
    @records.record("b", "fake_target.sub:thing", kind="alias", fixes="E", upstream="u", remove_when="r",
                    affects="fake<2")  # fmt: skip
    def provide(module: types.ModuleType, record: Record) -> str:
        seen.append(record.id)  # a provider knows its record: no retyped id
        return record.id

    (a,), (b,) = registry.for_module("fake_target"), registry.for_module("fake_target.sub")
    assert (a.id, a.proof, b.id, b.proof) == ("a", ("test_x::test_y",), "b", ())
    assert a.provide(types.ModuleType("fake_target")) == "a" and seen == ["a"]


def test_shared_predicates() -> None:
    module = types.ModuleType("fake_target")
    module.f = lambda new=None: new
    rec = make(id="r", kind="kwarg")
    assert records.lacks_kwarg("f", "old")(module, rec)
    assert not records.lacks_kwarg("f", "old", given="missing")(module, rec)
    assert not records.lacks_kwarg("f", "new")(module, rec)
    assert records.renaming("f", "old", "new")(module, rec)
    module.f = records.rename_kwarg(module.f, "old", "new", "r")
    assert module.f(old=3) == 3
    assert not records.lacks_kwarg("f", "old")(module, rec)  # accepts old now, through the adapter
    assert not records.not_adapted("f")(module, rec) and records.not_adapted("f")(module, make(id="other"))


def test_signatures_read_while_records_run_are_the_ones_inspect_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import functools
    import inspect

    def f(a: int, new: object = None, *, keep: int = 1, **kwargs: object) -> None: ...

    def same(args: tuple, kwargs: dict) -> tuple:
        return args, kwargs

    chained = _adapters.kwarg_adapter(_adapters.kwarg_adapter(f, same, "r1"), same, "r2")
    declared = _adapters.kwarg_adapter(f, same, "r3")  # a signature of its own stops the unwrapping
    declared.__signature__ = inspect.Signature([inspect.Parameter("old", inspect.Parameter.KEYWORD_ONLY)])
    monkeypatch.setattr(_registry, "_keywords", {})
    monkeypatch.setattr(_registry, "_applying", [1])  # as while apply_for runs records
    for func in (f, chained, declared, functools.partial(f, 1)):
        takes = _adapters.accepting(func)
        params = inspect.signature(func).parameters
        for name in ("a", "new", "keep", "kwargs", "old"):
            assert takes(name) == (
                name in params
                and params[name].kind
                in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            )
    assert _adapters.accepting(chained) is _adapters.accepting(f)  # one read for the whole chain
    assert len(_registry._keywords) == 2  # f's, and declared's own


def test_signatures_read_while_records_run_are_dropped_after(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _registry.Registry()
    monkeypatch.setattr(_registry, "REGISTRY", registry)
    module = types.ModuleType("fake_target")
    module.f = lambda new=None: new

    def provide(mod: types.ModuleType) -> object:
        assert records.accepting(mod.f)("new") and not records.accepting(mod.f)("old")
        assert len(_registry._keywords) == 1
        return records.rename_kwarg(mod.f, "old", "new", "r")

    registry.add(make(kind="kwarg", name="f", provide=provide))
    monkeypatch.setitem(sys.modules, "fake_target", module)
    assert [o.status for o in _registry.apply_for("fake_target")] == ["applied"]
    assert not _registry._keywords and module.f(old=3) == 3


def test_old_module_names_still_work() -> None:
    from odin_compat import _records, _startup, startup

    assert _startup is startup
    assert _records.Record is Record and _records.REGISTRY is _registry.REGISTRY
    assert _records.kwarg_adapter is _adapters.kwarg_adapter


def test_apply_for_runs_the_registered_records(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _registry.Registry()
    monkeypatch.setattr(_registry, "REGISTRY", registry)
    registry.add(make())
    module = types.ModuleType("fake_target")
    monkeypatch.setitem(sys.modules, "fake_target", module)
    assert [o.status for o in _registry.apply_for("fake_target")] == ["applied"]
    assert registry.outcomes[0].as_dict()["status"] == "applied"


def test_outcomes_are_checked_against_the_modules_loaded_now(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _registry.Registry()
    monkeypatch.setattr(_registry, "REGISTRY", registry)
    registry.add(make())
    module = types.ModuleType("fake_target")
    monkeypatch.setitem(sys.modules, "fake_target", module)
    _registry.apply_for("fake_target")
    assert [o.status for o in _registry.current_outcomes()] == ["applied"]
    module.thing = object()  # another library replaced what odin installed
    (lost,) = _registry.current_outcomes()
    assert lost.status == "lost" and "replaced since it was applied" in lost.reason
    # a new module object under the same name (a re-executed package) is repaired again
    fresh = types.ModuleType("fake_target")
    monkeypatch.setitem(sys.modules, "fake_target", fresh)
    assert [o.status for o in _registry.current_outcomes()] == ["applied"]
    assert hasattr(fresh, "thing")


def test_keyword_adapters_reach_subclasses_with_their_own_init() -> None:
    import dataclasses

    @dataclasses.dataclass
    class Base:
        new: int = 0

    @dataclasses.dataclass
    class Child(Base):  # a generated __init__ that never calls Base.__init__
        extra: int = 1

    class Caller(Base):
        def __init__(self, new: int = 0, **kwargs: object) -> None:  # checks its own keywords first
            super().__init__(new=new)

    Base.__init__ = records.rename_kwarg(Base.__init__, "old", "new", "test-rename")
    assert records.carry_to_subclasses(Base)
    assert Child(old=5).new == 5 and Child(new=6, extra=2).new == 6
    assert Caller(old=7).new == 7
    assert dataclasses.replace(Child(old=5), extra=3).new == 5


def test_carrying_never_replaces_an_upstream_new() -> None:
    class Base:
        def __new__(cls, *args: object, **kwargs: object) -> object:
            return super().__new__(cls)

    assert not records.carry_to_subclasses(Base)


def test_replaced_modules_are_found_by_the_snapshot_check(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _registry.Registry()
    monkeypatch.setattr(_registry, "REGISTRY", registry)
    registry.add(make())
    registry.add(make(id="test-record-2", module="fake_target_2"))
    for name in ("fake_target", "fake_target_2"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        _registry.apply_for(name)
    _registry.repair_replaced()  # nothing replaced: nothing applied again
    assert len(registry.outcomes) == 2
    fresh = types.ModuleType("fake_target_2")
    monkeypatch.setitem(sys.modules, "fake_target_2", fresh)
    _registry.repair_replaced()
    assert fresh.thing == "backported" and len(registry.outcomes) == 3
    monkeypatch.delitem(sys.modules, "fake_target")  # a repaired module gone: the others still checked
    newer = types.ModuleType("fake_target_2")
    monkeypatch.setitem(sys.modules, "fake_target_2", newer)
    _registry.repair_replaced()
    assert newer.thing == "backported"


def test_names_declared_public_while_records_run_are_listed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _registry.Registry()
    monkeypatch.setattr(_registry, "REGISTRY", registry)
    module = types.ModuleType("fake_target")
    module.__all__ = ["a", "thing"]

    def declare(name: str) -> object:
        def provide(mod: types.ModuleType) -> str:
            records._declare_public(mod, name)
            if name == "c":
                mod.__all__.append("d")  # someone else writes to the list meanwhile
            return name

        return provide

    for i, name in enumerate(["b", "thing", "c", "d", "b", "e"]):
        registry.add(make(id=f"r{i}", name=f"n{i}", provide=declare(name)))
    monkeypatch.setitem(sys.modules, "fake_target", module)
    _registry.apply_for("fake_target")
    assert module.__all__ == ["a", "thing", "b", "c", "d", "e"]
    assert not _registry._public  # dropped once the records have run
    records._declare_public(module, "f")
    records._declare_public(module, "f")
    assert module.__all__[-1] == "f" and module.__all__.count("f") == 1
