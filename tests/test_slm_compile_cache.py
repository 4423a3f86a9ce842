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

# One process of a run: load the shape's artifacts (or not), compile and run the named functions with
# inductor (on CPU), save what it compiled or used under its own name.
RUN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from torch._dynamo.utils import counters
    from odin_slm import compile_cache

    folder, load, names, me = Path(sys.argv[1]), sys.argv[2] == "load", sys.argv[3], sys.argv[4]
    out = {"saved_before_compiling": compile_cache.save(folder, me)}
    loaded = compile_cache.load(folder) if load else {}
    out["loaded"] = sorted(loaded)
    functions = {
        "f": lambda x: (x.sin() + 1).relu() * 2,
        "g": lambda x: x.cos() - x.exp(),
        "h": lambda x: x.tanh() * 3 + 1,
    }
    for name in names:
        torch.compile(functions[name])(torch.randn(8))
    out["hits"] = counters["inductor"]["fxgraph_cache_hit"]
    out["misses"] = counters["inductor"]["fxgraph_cache_miss"]
    out["saved"] = compile_cache.save(folder, me, loaded)
    print(json.dumps(out))
    """
)


def _run(tmp_path: Path, me: str, folder: Path, load: bool, names: str = "f") -> dict:
    env = {
        **os.environ,
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / me),  # each process: an empty inductor cache
        "TRITON_CACHE_DIR": str(tmp_path / me / "triton"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(folder), "load" if load else "no", names, f"{me}.bin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _hits(run: dict) -> tuple:
    return run["hits"], run["misses"], run["saved"]


@pytest.mark.slow
def test_a_new_process_with_empty_caches_hits_what_earlier_runs_saved(tmp_path) -> None:
    folder = tmp_path / "odin" / "compile" / "shape"
    first = _run(tmp_path, "a", folder, load=True)  # nothing there yet: compiles, then saves
    assert first == {"saved_before_compiling": False, "loaded": [], "hits": 0, "misses": 1, "saved": True}
    assert os.listdir(folder) == ["a.bin"]  # no part file left
    assert (folder / "a.bin").stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
    # the control: another empty inductor cache, without the artifacts, compiles again
    assert _run(tmp_path, "b", folder, load=False)["misses"] == 1
    # a run that also compiles something new: its artifact holds both, and replaces a.bin (all of it in c)
    assert _hits(_run(tmp_path, "c", folder, load=True, names="fg")) == (1, 1, True)
    assert os.listdir(folder) == ["c.bin"]
    # a run that used part of what it loaded and compiled nothing new writes nothing
    assert _hits(_run(tmp_path, "d", folder, load=True, names="f")) == (1, 0, False)
    assert _hits(_run(tmp_path, "e", folder, load=True, names="g")) == (1, 0, False)
    # a run that used part of it (g) and compiled something new (h): c.bin stays beside its artifact
    assert _hits(_run(tmp_path, "h", folder, load=True, names="gh")) == (1, 1, True)
    assert sorted(os.listdir(folder)) == ["c.bin", "h.bin"]
    assert _hits(_run(tmp_path, "all", folder, load=True, names="fgh")) == (3, 0, False)  # nothing lost


def test_an_unreadable_artifact_costs_only_the_compile(tmp_path) -> None:
    assert compile_cache.load(tmp_path / "missing") == {}
    folder = tmp_path / "shape"
    folder.mkdir(mode=0o700)
    (folder / "bad.bin").write_bytes(b"not an artifact")
    (folder / "dir.bin").mkdir()
    assert compile_cache.load(folder) == {}


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="owner bits")
def test_only_an_artifact_the_user_alone_may_write_is_loaded(tmp_path, monkeypatch, caplog) -> None:
    # it holds pickled objects and compiled kernels: loading it runs them
    loaded = []
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: loaded.append(data))
    folder = tmp_path / "shape"
    folder.mkdir(mode=0o700)
    artifact = folder / "a.bin"
    artifact.write_bytes(b"entries")
    for mode in (0o666, 0o664):  # others, or the group, may write it
        artifact.chmod(mode)
        compile_cache.load(folder)
        assert loaded == []
    assert "another user owns it or may write to it" in caplog.text
    artifact.chmod(0o644)
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)  # another user's file
    compile_cache.load(folder)
    assert loaded == []
    monkeypatch.setattr(os, "getuid", lambda: uid)
    artifact.rename(tmp_path / "outside.bin")
    (folder / "link.bin").symlink_to(tmp_path / "outside.bin")  # a link, even to the user's own file
    compile_cache.load(folder)
    assert loaded == []
    (folder / "link.bin").unlink()
    (tmp_path / "outside.bin").rename(artifact)
    folder.chmod(0o777)  # a folder others may write: they could swap the file
    compile_cache.load(folder)
    assert loaded == []
    folder.chmod(0o700)
    compile_cache.load(folder)
    assert loaded == [b"entries"]


class _Info:
    def __init__(self, **artifacts: list[str]) -> None:
        self.artifacts = artifacts


def _saves(monkeypatch, data: bytes, **artifacts: list[str]) -> None:
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (data, _Info(**artifacts)))


def test_a_save_that_fails_warns_leaves_no_part_file_and_the_run_goes_on(
    tmp_path, monkeypatch, caplog
) -> None:
    _saves(monkeypatch, b"entries", inductor=["a"])
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the folder should be
    assert compile_cache.save(blocked / "shape", "x.bin") is False
    assert "compile cache not saved" in caplog.text
    folder = tmp_path / "shape"
    (folder / "x.bin").mkdir(parents=True)  # the rename fails after the bytes were written
    assert compile_cache.save(folder, "x.bin") is False and os.listdir(folder) == ["x.bin"]
    (folder / "x.bin").rmdir()
    assert compile_cache.save(folder, "x.bin") is True and (folder / "x.bin").read_bytes() == b"entries"
    assert (folder / "x.bin").stat().st_mode & 0o777 == 0o600 and os.listdir(folder) == ["x.bin"]
    folder.chmod(0o777)  # others may write the folder: nothing is saved there
    assert compile_cache.save(folder, "y.bin") is False and not (folder / "y.bin").exists()


def test_artifacts_are_added_never_narrowed(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "shape"
    folder.mkdir(mode=0o700)
    for name in ("ab.bin", "c.bin"):
        (folder / name).write_bytes(name.encode())
    loaded = {
        "ab.bin": frozenset({("inductor", "a"), ("inductor", "b")}),
        "c.bin": frozenset({("inductor", "c")}),
    }
    _saves(monkeypatch, b"a", inductor=["a"])  # used only what it loaded
    assert compile_cache.save(folder, "run.bin", loaded) is False
    _saves(monkeypatch, b"cd", inductor=["c", "d"])  # compiled d: c.bin, all of it in run.bin, goes
    assert compile_cache.save(folder, "run.bin", loaded) is True
    assert sorted(os.listdir(folder)) == ["ab.bin", "run.bin"]
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: None)  # compiled nothing
    assert compile_cache.save(folder, "none.bin") is False and not (folder / "none.bin").exists()


def test_only_the_newest_artifacts_are_kept(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "shape"
    folder.mkdir(mode=0o700)
    for age in range(compile_cache.KEEP + 2):
        old = folder / f"old{age}.bin"
        old.write_bytes(b"x")
        os.utime(old, (1000 - age, 1000 - age))
    _saves(monkeypatch, b"new", inductor=["n"])
    assert compile_cache.save(folder, "new.bin") is True
    kept = sorted(os.listdir(folder))
    assert len(kept) == compile_cache.KEEP and "new.bin" in kept and "old0.bin" in kept
    assert "old8.bin" not in kept and "old9.bin" not in kept


def test_one_folder_per_shape_under_odin_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ODIN_CACHE", str(tmp_path))
    model, args, levers = _tiny(), _Args(), ["compile_layers", "warm_compile_workers"]
    folder = compile_cache.artifact_dir(model, args, levers=levers)
    assert folder.parent == tmp_path / "compile"
    assert folder == compile_cache.artifact_dir(_tiny(), _Args(), levers=levers)
    model.config._name_or_path = "elsewhere"  # where it was loaded from changes no graph
    assert folder == compile_cache.artifact_dir(model, args, levers=["compile_layers"])  # nor warming workers
    frozen = _tiny()
    frozen.model.embed_tokens.weight.requires_grad_(False)  # other trainable weights (LoRA: rank, targets)
    others = {
        compile_cache.artifact_dir(frozen, args, levers=levers),
        compile_cache.artifact_dir(model, args, levers=["compile_layers(mode=reduce-overhead)"]),
        compile_cache.artifact_dir(_tiny(layers=3), args, levers=levers),
    }
    for name, value in [
        ("max_length", 1024),
        ("per_device_train_batch_size", 4),
        ("gradient_checkpointing", True),
    ]:
        changed = _Args()
        setattr(changed, name, value)
        others.add(compile_cache.artifact_dir(model, changed, levers=levers))
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    others.add(compile_cache.artifact_dir(model, args, levers=levers))
    monkeypatch.undo()
    monkeypatch.setenv("ODIN_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "NVIDIA H200")
    others.add(compile_cache.artifact_dir(model, args, levers=levers))
    assert folder not in others and len(others) == 8
    model.config.task_specific_params = {"summarization": {}, 1: {}}  # keys that do not sort
    assert compile_cache.artifact_dir(model, args, levers=levers).parent == tmp_path / "compile"


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
    monkeypatch.setattr(compile_cache, "load", lambda folder: seen.append(folder) or {"x.bin": entries})
    return seen


def test_tune_loads_the_artifact_where_inductor_compiles(tmp_path, loads) -> None:
    model = _tiny()
    plan = fast.tune(model, _Args(), lora=False)
    assert "compile_cache(loaded 3 entries)" in plan.on
    folder, loaded = model._odin_compile_cache
    assert loads == [folder] and folder.parent == tmp_path / "compile" and len(loaded["x.bin"]) == 3


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


@pytest.mark.parametrize("first_step", [1, 101])  # 101: a resumed run
def test_every_rank_saves_after_its_first_step_at_checkpoints_and_at_the_end(
    tmp_path, monkeypatch, first_step
) -> None:
    seen = []
    monkeypatch.setattr(
        compile_cache, "save", lambda folder, name, loaded: seen.append((folder, name)) or True
    )
    callback = compile_cache.saver(tmp_path, {})
    other = compile_cache.saver(tmp_path, {})  # another run or rank: a file of its own
    state = SimpleNamespace(global_step=first_step, is_world_process_zero=False)
    callback.on_step_end(None, state, None)
    assert len(seen) == 1  # a crash later keeps what the first step compiled
    for step in (first_step + 1, first_step + 2):
        callback.on_step_end(None, SimpleNamespace(global_step=step), None)
    assert len(seen) == 1
    callback.on_save(None, state, None)  # graphs for new row lengths come after the first step
    callback.on_train_end(None, state, None)
    other.on_train_end(None, state, None)
    assert [folder for folder, _ in seen] == [tmp_path] * 4
    assert len({name for _, name in seen[:3]}) == 1 and seen[3][1] != seen[0][1]


def test_the_fast_trainer_saves_where_tune_loaded(tmp_path, monkeypatch) -> None:
    from transformers import Trainer, TrainingArguments

    model = _tiny()
    model._odin_compile_cache = (tmp_path / "shape", {})
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True)
    trainer = fast.trainer_class(Trainer)(model=model, args=args)
    names = [type(c).__name__ for c in trainer.callback_handler.callbacks]
    assert "SaveCompileCache" in names
    model._odin_compile_cache = None
    trainer = fast.trainer_class(Trainer)(model=model, args=args)
    assert "SaveCompileCache" not in [type(c).__name__ for c in trainer.callback_handler.callbacks]
