"""odin_slm.compile_cache: a run's compile caches saved to $ODIN_CACHE and loaded by the next run of its shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from odin_slm import compile_cache, fast  # noqa: E402
from test_slm_fast import _Args, _tiny  # noqa: E402

# One process of a run: load the artifact (or not), compile and run the named functions with inductor (on
# CPU), save what it compiled or used.
RUN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from torch._dynamo.utils import counters
    from odin_slm import compile_cache

    path, load, names = Path(sys.argv[1]), sys.argv[2] == "load", sys.argv[3]
    out = {"saved_before_compiling": compile_cache.save(path)}
    loaded = compile_cache.load(path) if load else compile_cache.NO_ENTRIES
    out["loaded"] = len(loaded)
    functions = {"f": lambda x: (x.sin() + 1).relu() * 2, "g": lambda x: x.cos() - x.exp()}
    for name in names:
        torch.compile(functions[name])(torch.randn(8))
    out["hits"] = counters["inductor"]["fxgraph_cache_hit"]
    out["misses"] = counters["inductor"]["fxgraph_cache_miss"]
    out["saved"] = compile_cache.save(path, loaded)
    print(json.dumps(out))
    """
)


def _run(tmp_path: Path, inductor_dir: str, artifact: Path, load: bool, names: str = "f") -> dict:
    env = {
        **os.environ,
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / inductor_dir),  # each process: an empty inductor cache
        "TRITON_CACHE_DIR": str(tmp_path / inductor_dir / "triton"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(artifact), "load" if load else "no", names],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_new_process_with_empty_caches_hits_what_earlier_runs_saved(tmp_path) -> None:
    artifact = tmp_path / "odin" / "compile" / "shape.bin"
    first = _run(tmp_path, "a", artifact, load=True)  # nothing there yet: compiles, then saves
    assert first == {"saved_before_compiling": False, "loaded": 0, "hits": 0, "misses": 1, "saved": True}
    assert artifact.is_file() and not list(artifact.parent.glob(".*tmp"))
    assert artifact.stat().st_mode & 0o777 == 0o600 and artifact.parent.stat().st_mode & 0o777 == 0o700
    # the control: another empty inductor cache, without the artifact, compiles again
    assert _run(tmp_path, "b", artifact, load=False)["misses"] == 1
    # a run that also compiles something new: the file then holds both
    both = _run(tmp_path, "c", artifact, load=True, names="fg")
    assert both["loaded"] >= 1 and (both["hits"], both["misses"], both["saved"]) == (1, 1, True)
    # a run that used only part of the file leaves it whole: the next run hits what it did not need
    part = _run(tmp_path, "d", artifact, load=True, names="f")
    assert (part["hits"], part["misses"], part["saved"]) == (1, 0, False)
    other = _run(tmp_path, "e", artifact, load=True, names="g")
    assert (other["hits"], other["misses"]) == (1, 0)


def test_an_unreadable_artifact_costs_only_the_compile(tmp_path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not an artifact")
    assert compile_cache.load(bad) == compile_cache.NO_ENTRIES
    assert compile_cache.load(tmp_path / "missing.bin") == compile_cache.NO_ENTRIES
    assert compile_cache.load(tmp_path) == compile_cache.NO_ENTRIES  # a directory


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="owner bits")
def test_only_an_artifact_the_user_alone_may_write_is_loaded(tmp_path, monkeypatch, caplog) -> None:
    # it holds pickled objects and compiled kernels: loading it runs them
    loaded = []
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: loaded.append(data))
    folder = tmp_path / "compile"
    folder.mkdir(mode=0o700)
    artifact = folder / "shape.bin"
    artifact.write_bytes(b"entries")
    for mode in (0o666, 0o664):  # others, or the group, may write it
        artifact.chmod(mode)
        assert compile_cache.load(artifact) == compile_cache.NO_ENTRIES and loaded == []
    assert "another user owns it or may write to it" in caplog.text
    artifact.chmod(0o644)
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)  # another user's file
    assert compile_cache.load(artifact) == compile_cache.NO_ENTRIES and loaded == []
    monkeypatch.setattr(os, "getuid", lambda: uid)
    link = folder / "link.bin"
    link.symlink_to(artifact)  # a link, even to the user's own file: not followed
    assert compile_cache.load(link) == compile_cache.NO_ENTRIES and loaded == []
    folder.chmod(0o777)  # a folder others may write: they could swap the file
    assert compile_cache.load(artifact) == compile_cache.NO_ENTRIES and loaded == []
    assert "owns its directory or may write to it" in caplog.text
    folder.chmod(0o700)
    compile_cache.load(artifact)
    assert loaded == [b"entries"]


class _Info:
    def __init__(self, **artifacts: list[str]) -> None:
        self.artifacts = artifacts


def test_a_save_that_fails_warns_leaves_no_part_file_and_the_run_goes_on(
    tmp_path, monkeypatch, caplog
) -> None:
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (b"entries", _Info(inductor=["a"])))
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the directory should be
    assert compile_cache.save(blocked / "compile" / "x.bin") is False
    assert "compile cache not saved" in caplog.text
    target = tmp_path / "compile" / "x.bin"
    target.mkdir(parents=True)  # the rename fails after the bytes were written
    assert compile_cache.save(target) is False and os.listdir(target.parent) == ["x.bin"]
    target.rmdir()
    assert compile_cache.save(target) is True and target.read_bytes() == b"entries"
    assert target.stat().st_mode & 0o777 == 0o600 and os.listdir(target.parent) == ["x.bin"]


def test_a_run_that_used_only_what_it_loaded_keeps_the_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (b"fewer", _Info(inductor=["a"])))
    target = tmp_path / "x.bin"
    target.write_bytes(b"more")
    loaded = frozenset({("inductor", "a"), ("inductor", "b")})
    assert compile_cache.save(target, loaded) is False and target.read_bytes() == b"more"
    assert compile_cache.save(target, frozenset({("inductor", "b")})) is True  # it compiled "a" anew
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: None)  # compiled nothing
    assert compile_cache.save(tmp_path / "y.bin") is False and not (tmp_path / "y.bin").exists()


def test_one_artifact_per_shape_under_odin_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ODIN_CACHE", str(tmp_path))
    model, args, levers = _tiny(), _Args(), ["compile_layers", "warm_compile_workers"]
    path = compile_cache.artifact_path(model, args, levers=levers)
    assert path.parent == tmp_path / "compile"
    assert path == compile_cache.artifact_path(_tiny(), _Args(), levers=levers)
    model.config._name_or_path = "elsewhere"  # where it was loaded from changes no graph
    assert path == compile_cache.artifact_path(model, args, levers=["compile_layers"])  # nor warming workers
    frozen = _tiny()
    frozen.model.embed_tokens.weight.requires_grad_(False)  # other trainable weights (LoRA: rank, targets)
    longer = _Args()
    longer.max_length = 1024
    others = {
        compile_cache.artifact_path(frozen, args, levers=levers),
        compile_cache.artifact_path(model, longer, levers=levers),
        compile_cache.artifact_path(model, args, levers=["compile_layers(mode=reduce-overhead)"]),
        compile_cache.artifact_path(_tiny(layers=3), args, levers=levers),
    }
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    others.add(compile_cache.artifact_path(model, args, levers=levers))
    monkeypatch.undo()
    monkeypatch.setenv("ODIN_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "NVIDIA H200")
    others.add(compile_cache.artifact_path(model, args, levers=levers))
    assert path not in others and len(others) == 6
    model.config.task_specific_params = {"summarization": {}, 1: {}}  # keys that do not sort
    assert compile_cache.artifact_path(model, args, levers=levers).parent == tmp_path / "compile"


@pytest.fixture
def loads(tmp_path, monkeypatch) -> list:
    """tune as on a CUDA machine with Triton (nothing compiles); the artifacts it loads."""
    monkeypatch.setenv("ODIN_CACHE", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_FORCE_DISABLE_CACHES", raising=False)
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "_compile_layers", lambda model, mode="default", backend="inductor": None)
    monkeypatch.setattr(fast, "warm_compile_workers", lambda: True)
    seen: list = []
    entries = frozenset({("inductor", "a"), ("inductor", "b"), ("aot_autograd", "c")})
    monkeypatch.setattr(compile_cache, "load", lambda path: seen.append(path) or entries)
    return seen


def test_tune_loads_the_artifact_where_inductor_compiles(tmp_path, loads) -> None:
    model = _tiny()
    plan = fast.tune(model, _Args(), lora=False)
    assert "compile_cache(loaded 3 entries)" in plan.on
    path, loaded = model._odin_compile_cache
    assert loads == [path] and path.parent == tmp_path / "compile" and len(loaded) == 3


@pytest.mark.parametrize(
    ("levers", "env", "reason"),
    [
        ({"compile_cache": False}, None, "disabled"),
        ({"compile_layers": False}, None, "needs compile_layers with inductor"),
        ({"compile_backend": "cudagraphs"}, None, "needs compile_layers with inductor"),
        ({}, "old torch", "torch 2.6.0 has no cache artifacts (2.7 or later)"),
        ({}, "1", "TORCHINDUCTOR_FORCE_DISABLE_CACHES is set"),  # torch's own switch
    ],
)
def test_no_artifact_is_loaded_where_the_cache_is_off(monkeypatch, loads, levers, env, reason) -> None:
    if env == "old torch":
        monkeypatch.delattr(torch.compiler, "load_cache_artifacts")
        monkeypatch.setattr(torch, "__version__", "2.6.0")
    elif env:
        monkeypatch.setenv("TORCHINDUCTOR_FORCE_DISABLE_CACHES", env)
    model = _tiny()
    plan = fast.tune(model, _Args(), lora=False, **levers)
    assert plan.off["compile_cache"] == reason and model._odin_compile_cache is None
    assert loads == []


@pytest.mark.parametrize(
    ("process_zero", "first_step", "saves"),
    [(True, 1, ["step 1", "end"]), (True, 101, ["first step after resuming", "end"]), (False, 1, [])],
)
def test_the_main_process_saves_after_the_first_step_and_at_the_end(
    tmp_path, monkeypatch, process_zero, first_step, saves
) -> None:
    seen = []
    monkeypatch.setattr(compile_cache, "save", lambda path, loaded: seen.append(path) or True)
    callback = compile_cache.saver(tmp_path / "a.bin")
    for step in range(first_step, first_step + 3):
        state = SimpleNamespace(global_step=step, is_world_process_zero=process_zero)
        callback.on_step_end(None, state, None)
        if step == first_step:
            assert seen == ([tmp_path / "a.bin"] if process_zero else [])  # a crash later keeps it
    callback.on_train_end(None, state, None)
    assert len(seen) == len(saves)


def test_the_fast_trainer_saves_where_tune_loaded(tmp_path, monkeypatch) -> None:
    from transformers import Trainer, TrainingArguments

    model = _tiny()
    model._odin_compile_cache = (tmp_path / "a.bin", compile_cache.NO_ENTRIES)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True)
    trainer = fast.trainer_class(Trainer)(model=model, args=args)
    names = [type(c).__name__ for c in trainer.callback_handler.callbacks]
    assert "SaveCompileCache" in names
    model._odin_compile_cache = None
    trainer = fast.trainer_class(Trainer)(model=model, args=args)
    assert "SaveCompileCache" not in [type(c).__name__ for c in trainer.callback_handler.callbacks]
