"""Records: when they apply, containment, and never replacing upstream's objects."""

from __future__ import annotations

import sys
import types

import pytest

from odin_compat import _records
from odin_compat._records import Record, apply, why_applies


def make(**overrides) -> Record:
    fields = dict(
        id="test-record", module="fake_target", name="thing", kind="backport", fixes="ImportError: thing",
        works="fake>=2", breaks="fake<2", upstream="https://example.invalid/pr/1", remove_when="never",
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


def test_version_range_gates_the_record() -> None:
    module = types.ModuleType("fake_target")
    pytest_version = __import__("importlib.metadata").metadata.version("pytest")
    assert why_applies(make(dist="pytest", versions=f"=={pytest_version}"), module)
    assert why_applies(make(dist="pytest", versions="<1"), module) is None
    assert why_applies(make(dist="no-such-dist-xyz", versions=">=0"), module) is None


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
        make(versions="<2")  # a range needs its distribution


def test_apply_for_runs_the_registered_records(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _records.Registry()
    monkeypatch.setattr(_records, "REGISTRY", registry)
    registry.add(make())
    module = types.ModuleType("fake_target")
    monkeypatch.setitem(sys.modules, "fake_target", module)
    assert [o.status for o in _records.apply_for("fake_target")] == ["applied"]
    assert registry.outcomes[0].as_dict()["status"] == "applied"


def test_outcomes_are_checked_against_the_modules_loaded_now(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _records.Registry()
    monkeypatch.setattr(_records, "REGISTRY", registry)
    registry.add(make())
    module = types.ModuleType("fake_target")
    monkeypatch.setitem(sys.modules, "fake_target", module)
    _records.apply_for("fake_target")
    assert [o.status for o in _records.current_outcomes()] == ["applied"]
    module.thing = object()  # another library replaced what odin installed
    (lost,) = _records.current_outcomes()
    assert lost.status == "lost" and "replaced since it was applied" in lost.reason
    # a new module object under the same name (a re-executed package) is repaired again
    fresh = types.ModuleType("fake_target")
    monkeypatch.setitem(sys.modules, "fake_target", fresh)
    assert [o.status for o in _records.current_outcomes()] == ["applied"]
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

    Base.__init__ = _records.rename_kwarg(Base.__init__, "old", "new", "test-rename")
    assert _records.carry_to_subclasses(Base)
    assert Child(old=5).new == 5 and Child(new=6, extra=2).new == 6
    assert Caller(old=7).new == 7
    assert dataclasses.replace(Child(old=5), extra=3).new == 5


def test_carrying_never_replaces_an_upstream_new() -> None:
    class Base:
        def __new__(cls, *args: object, **kwargs: object) -> object:
            return super().__new__(cls)

    assert not _records.carry_to_subclasses(Base)
