"""odin_slm.async_save on CPU: checkpoints written in the background hold what a synchronous save writes,
are complete only once all of them is written, and never cost the previous checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from odin_slm import async_save, checkpoints, fast  # noqa: E402

BIG = 1 << 19  # floats: 2 MiB, above async_save.MIN_BYTES


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ODIN_CACHE", str(tmp_path / "odin-cache"))


@pytest.fixture
def slow_weights(monkeypatch) -> None:
    """Weights files that take half a second to write, so a save is still in flight where it matters."""
    import time

    import safetensors.torch

    real = safetensors.torch.save_file

    def slow(tensors, filename, metadata=None):  # noqa: ANN001, ANN202
        time.sleep(0.5)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr("safetensors.torch.save_file", slow)
    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", slow)


class _State:
    """What the writer needs of a Trainer: its state (a real TrainerState)."""

    def __init__(self) -> None:
        from transformers import TrainerState

        self.state = TrainerState(global_step=3)


def _run(tmp_path: Path, **kwargs):  # noqa: ANN001, ANN202
    """``_trainer(...)``, trained."""
    trainer = _trainer(tmp_path, **kwargs)
    trainer.train()
    return trainer


def _trainer(
    tmp_path: Path,
    *,
    background: bool,
    callbacks=(),
    wait_after_train=True,
    peft_config=None,
    iterable=False,
    rows=16,
    **config,
):  # noqa: ANN001, ANN202
    """TRL's SFTTrainer (odin's fast class) on a tiny model, CPU, saving every 3 steps; 16 ``rows``, so
    passes of 8 steps (``iterable``: as a dataset without a length)."""
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import SFTConfig, SFTTrainer

    vocab = {f"t{i}": i for i in range(64)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")), pad_token="t1", eos_token="t2"
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(_tiny_config())
    model._odin_async_save = async_save.MODES[0] if background else False
    args = SFTConfig(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        per_device_train_batch_size=2,
        logging_steps=1,
        learning_rate=1e-2,
        seed=0,
        **{"max_steps": 6, "save_steps": 3, **config},
    )
    data = Dataset.from_dict(
        {"input_ids": [[(3 * i + j) % 60 + 2 for j in range(10 + i % 3)] for i in range(rows)]}
    )
    trainer = fast.trainer_class(SFTTrainer)(
        model=model,
        args=args,
        train_dataset=data.to_iterable_dataset() if iterable else data,
        processing_class=tokenizer,
        callbacks=list(callbacks),
        peft_config=peft_config,
    )
    trainer.wait_after_train = wait_after_train
    return trainer


def _tiny_config():  # noqa: ANN202
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )


def _files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir()}


def _tensors(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=False)


def _same(a, b) -> bool:  # noqa: ANN001
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def test_a_checkpoint_written_in_the_background_holds_what_the_trainer_writes(tmp_path) -> None:
    sync = _run(tmp_path / "sync", background=False)
    background = _run(tmp_path / "background", background=True)
    assert sync._odin_writer is None and background._odin_writer is not None
    background.wait_for_checkpoints()
    for step in (3, 6):
        a = _files(tmp_path / "sync" / f"checkpoint-{step}")
        b = _files(tmp_path / "background" / f"checkpoint-{step}")
        assert a.keys() == b.keys()
        assert {"model.safetensors", "optimizer.pt", "trainer_state.json"} <= a.keys()
        for name in ("model.safetensors", "optimizer.pt", "scheduler.pt"):
            assert _same(_tensors(a[name]), _tensors(b[name])), name
        assert json.loads(a["trainer_state.json"].read_text()) == json.loads(
            b["trainer_state.json"].read_text()
        )
        assert checkpoints.incomplete_reason(b["trainer_state.json"].parent) is None


def test_a_checkpoint_counts_only_once_written_and_the_previous_one_stays_until_then(
    tmp_path, monkeypatch
) -> None:
    """Saves still being written (checkpoint-3 held until step 4 has trained, checkpoint-6 until the test
    lets it go) are not yet checkpoints to resume from, the previous one is kept until the new one is
    complete, and each holds the weights of its own step."""
    import safetensors.torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    gates, seen = {3: threading.Event(), 6: threading.Event()}, {}
    real = safetensors.torch.save_file

    def held(tensors, filename, metadata=None):  # noqa: ANN001, ANN202
        for step, gate in gates.items():
            if f"checkpoint-{step}" in str(filename):
                assert gate.wait(60)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr("safetensors.torch.save_file", held)
    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", held)

    class Watch(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):  # noqa: ANN001, ANN003, ANN201
            if state.global_step == 3:  # after the optimizer step, before the save
                seen["step3"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if state.global_step == 4:
                out = Path(args.output_dir)
                seen["while_held"] = (
                    checkpoints.incomplete_reason(out / "checkpoint-3"),
                    checkpoints.latest_complete(out),
                    (out / "checkpoint-3" / "config.json").is_file(),  # small files: written at once
                )
                gates[3].set()

    class Clock(TrainerCallback):  # an on_save that does not read the checkpoint, and says so
        odin_reads_checkpoints = False

        def on_save(self, args, state, control, **kw):  # noqa: ANN001, ANN003, ANN201
            seen.setdefault("saves", []).append(state.global_step)

    trainer = _run(
        tmp_path,
        background=True,
        callbacks=[Watch(), Clock()],
        wait_after_train=False,
        max_steps=6,
        save_total_limit=1,
    )
    assert seen["saves"] == [3, 6]
    reason, latest, config_written = seen["while_held"]
    assert reason is not None and latest is None and config_written
    # training is over, checkpoint-6 still being written: checkpoint-3 is complete and still there
    assert checkpoints.incomplete_reason(tmp_path / "checkpoint-6") is not None
    assert checkpoints.latest_complete(tmp_path) == tmp_path / "checkpoint-3"
    step3 = load_file(tmp_path / "checkpoint-3" / "model.safetensors")
    assert all(torch.equal(step3[k], seen["step3"][k]) for k in step3)
    assert not all(torch.equal(step3[k], v) for k, v in trainer.model.state_dict().items() if k in step3)
    gates[6].set()
    trainer.wait_for_checkpoints()
    assert [p.name for p in checkpoints.checkpoint_dirs(tmp_path)] == ["checkpoint-6"]  # rotated after
    assert checkpoints.latest_complete(tmp_path) == tmp_path / "checkpoint-6"


def test_the_copy_is_taken_when_the_trainer_saves(tmp_path, monkeypatch) -> None:
    gate = threading.Event()
    real = torch.save
    monkeypatch.setattr(torch, "save", lambda *a, **k: (gate.wait(60), real(*a, **k)))
    writer, owner, weight = async_save.Writer(), _State(), torch.zeros(BIG)
    with writer.deferred(owner):
        torch.save({"w": weight, "step": 3, "betas": (0.9, 0.999)}, tmp_path / "optimizer.pt")
    weight.add_(1)  # training goes on while the file is written
    gate.set()
    writer.wait()
    saved = torch.load(tmp_path / "optimizer.pt", weights_only=True)
    assert torch.equal(saved["w"], torch.zeros(BIG)) and saved["step"] == 3 and saved["betas"] == (0.9, 0.999)


class Settings:  # like training_args.bin: an object, not only tensors and scalars
    def __init__(self) -> None:
        self.weights = torch.zeros(BIG)


def test_small_files_and_objects_that_may_change_are_written_at_once(tmp_path) -> None:
    writer, owner = async_save.Writer(), _State()
    with writer.deferred(owner):
        torch.save({"rng": torch.zeros(4)}, tmp_path / "rng.pth")
        torch.save(Settings(), tmp_path / "args.bin")
        torch.save({"w": torch.zeros(BIG)}, tmp_path / "big.pt")
        owner.state.save_to_json(str(tmp_path / "trainer_state.json"))
        written = {p.name for p in tmp_path.iterdir()}
    writer.wait()
    assert written == {"rng.pth", "args.bin"}
    assert {p.name for p in tmp_path.iterdir()} == {"rng.pth", "args.bin", "big.pt", "trainer_state.json"}


def test_writes_that_would_not_fit_in_memory_happen_at_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(
        async_save, "_available_bytes", lambda: BIG * 8
    )  # half of it: one tensor of BIG floats
    writer, owner = async_save.Writer(), _State()
    with writer.deferred(owner):
        torch.save({"w": torch.zeros(BIG)}, tmp_path / "a.pt")
        torch.save({"w": torch.zeros(BIG)}, tmp_path / "b.pt")
        written = {p.name for p in tmp_path.iterdir()}
    writer.wait()
    assert written == {"b.pt"}
    assert (tmp_path / "a.pt").is_file()


def test_a_failed_write_raises_at_the_next_wait_and_leaves_the_checkpoint_incomplete(
    tmp_path, monkeypatch
) -> None:
    def full(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    writer, owner = async_save.Writer(), _State()
    (tmp_path / "model.safetensors").write_bytes(b"")
    with writer.deferred(owner):
        torch.save({"w": torch.zeros(BIG)}, tmp_path / "optimizer.pt")
        owner.state.save_to_json(str(tmp_path / "trainer_state.json"))
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    assert checkpoints.incomplete_reason(tmp_path) == "no trainer_state.json or odin_loop_state.json"
    writer.wait()  # raised once; the next save starts afresh


def test_the_trainers_own_functions_are_back_after_a_save(tmp_path) -> None:
    import safetensors.torch
    import transformers.modeling_utils
    import transformers.trainer

    before = (torch.save, safetensors.torch.save_file, transformers.modeling_utils.safe_save_file)
    rotate = transformers.trainer.rotate_checkpoints
    owner = _State()
    with async_save.Writer().deferred(owner):
        assert torch.save is not before[0]
    assert (torch.save, safetensors.torch.save_file, transformers.modeling_utils.safe_save_file) == before
    assert transformers.trainer.rotate_checkpoints is rotate
    assert "save_to_json" not in vars(owner.state)


def test_the_interpreter_waits_for_a_checkpoint_in_flight(tmp_path) -> None:
    script = f"""
import time, torch
from transformers import TrainerState
from odin_slm import async_save
real = torch.save
torch.save = lambda *a, **k: (time.sleep(1), real(*a, **k))
class Owner:
    state = TrainerState(global_step=1)
with async_save.Writer().deferred(Owner()):
    torch.save({{"w": torch.zeros({BIG})}}, {str(tmp_path / "optimizer.pt")!r})
    Owner.state.save_to_json({str(tmp_path / "trainer_state.json")!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert torch.load(tmp_path / "optimizer.pt", weights_only=True)["w"].numel() == BIG
    assert json.loads((tmp_path / "trainer_state.json").read_text())["global_step"] == 1


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ({}, None),
        ({"push_to_hub": True}, "push_to_hub"),
        ({"load_best_model_at_end": True}, "best-model"),
        ({"metric_for_best_model": "loss"}, "best-model"),
        ({"fsdp": "full_shard"}, "FSDP"),
    ],
)
def test_async_save_is_off_where_checkpoints_are_read_as_they_are_saved(setting, reason) -> None:
    from types import SimpleNamespace

    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    )
    args = SimpleNamespace(bf16=False, optim="adamw_torch", gradient_checkpointing=False, **setting)
    plan = fast.tune(model, args, lora=False)
    if reason is None:
        assert "async_save" in plan.on and model._odin_async_save == "pinned"
    else:
        assert reason in plan.off["async_save"] and model._odin_async_save is False
    assert "async_save" in fast.tune(model, args, lora=False, async_save=False).off


def test_the_run_waits_for_its_checkpoints_before_it_reports() -> None:
    from odin_slm.train import checkpoints_written

    class Trainer:
        waited = 0

        def wait_for_checkpoints(self) -> None:
            self.waited += 1

    result = type("Result", (), {"trainer": Trainer()})()
    checkpoints_written(result)
    assert result.trainer.waited == 1
    checkpoints_written(type("Result", (), {"trainer": None})())  # the loop engine: no trainer


def test_callbacks_that_read_checkpoints_on_save_and_code_after_train_find_them_complete(
    tmp_path, slow_weights
) -> None:
    """As without the lever: a callback's on_save (one that does not say it leaves the checkpoint alone)
    and the code after train() see complete checkpoints, however slow the writes."""
    from transformers import TrainerCallback

    seen = []

    class Upload(TrainerCallback):
        def on_save(self, args, state, control, **kw):  # noqa: ANN001, ANN003, ANN201
            seen.append(
                checkpoints.incomplete_reason(Path(args.output_dir) / f"checkpoint-{state.global_step}")
            )

    _run(tmp_path / "reader", background=True, callbacks=[Upload()])
    assert seen == [None, None]
    _run(tmp_path / "after", background=True)
    assert checkpoints.latest_complete(tmp_path / "after") == tmp_path / "after" / "checkpoint-6"


def test_writes_from_other_threads_happen_at_once(tmp_path) -> None:
    writer, owner, seen = async_save.Writer(), _State(), {}

    def other() -> None:
        torch.save({"w": torch.zeros(BIG)}, tmp_path / "other.pt")
        seen["written"] = (tmp_path / "other.pt").is_file()

    with writer.deferred(owner):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    writer.wait()
    assert seen["written"] is True


def test_tensors_a_copy_would_change_are_written_at_once(tmp_path) -> None:
    weight = torch.zeros(BIG)
    cases = {
        "parameter.pt": {"w": torch.nn.Parameter(torch.zeros(BIG))},
        "grad.pt": {"w": torch.zeros(BIG, requires_grad=True)},
        "aliased.pt": {"a": weight, "b": weight},
        "views.pt": {"a": weight[: BIG // 2], "b": weight[BIG // 2 :]},
    }
    writer = async_save.Writer()
    with writer.deferred(_State()):
        for name, obj in cases.items():
            torch.save(obj, tmp_path / name)
        written = {p.name for p in tmp_path.iterdir()}
    writer.wait()
    assert written == set(cases)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="pinned, device"):
        async_save.Writer("disk")


def test_async_save_is_off_for_sharded_launches_and_on_under_ddp(monkeypatch) -> None:
    from types import SimpleNamespace

    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    )
    args = SimpleNamespace(bf16=False, optim="adamw_torch", gradient_checkpointing=False)
    for flag in ("true", "1", "yes", "on"):  # what accelerate reads as true
        monkeypatch.setenv("ACCELERATE_USE_FSDP", flag)
        assert "FSDP" in fast.tune(model, args, lora=False).off["async_save"]
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setattr(fast, "world_size", lambda: 2)
    assert "async_save" in fast.tune(model, args, lora=False).on


def _torchrun(tmp_path: Path, *args: str) -> str:
    env = {"PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         str(Path(__file__).with_name("_ddp_checkpoints.py")), *args],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**__import__("os").environ, **env},
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_two_ranks_write_in_the_background_what_they_write_in_the_loop(tmp_path) -> None:
    # DDP's rank 0 writes the model, optimizer and trainer state; rank 1 only its RNG state. With the
    # background writer, rank 0 no longer holds both ranks up (rank 1 waits at the next all-reduce)
    _torchrun(tmp_path, str(tmp_path / "sync"), "sync")
    log = _torchrun(tmp_path, str(tmp_path / "background"), "pinned")
    assert "rank 0: background=True reserves=True" in log and "rank 1: background=True reserves=False" in log
    for step in (3, 6):
        a = _files(tmp_path / "sync" / f"checkpoint-{step}")
        b = _files(tmp_path / "background" / f"checkpoint-{step}")
        assert (
            a.keys() == b.keys() and {"rng_state_0.pth", "rng_state_1.pth", "trainer_state.json"} <= a.keys()
        )
        for name in ("model.safetensors", "optimizer.pt"):
            assert _same(_tensors(a[name]), _tensors(b[name])), (step, name)
        assert checkpoints.incomplete_reason(tmp_path / "background" / f"checkpoint-{step}") is None
    # both ranks resume from the background checkpoint to the weights of the uninterrupted run
    _torchrun(tmp_path, str(tmp_path / "resumed"), "pinned", str(tmp_path / "background" / "checkpoint-3"))
    resumed = _tensors(tmp_path / "resumed" / "checkpoint-6" / "model.safetensors")
    assert _same(resumed, _tensors(tmp_path / "sync" / "checkpoint-6" / "model.safetensors"))


def test_a_trainer_that_saves_through_other_names_is_not_patched(monkeypatch) -> None:
    import transformers.trainer

    assert async_save.unavailable() is None

    def _save_checkpoint(self, model, trial):  # noqa: ANN001, ANN202
        self.state.write_json("trainer_state.json")  # a later transformers, say

    monkeypatch.setattr(transformers.trainer.Trainer, "_save_checkpoint", _save_checkpoint)
    assert "other names" in async_save.unavailable()


def test_a_trainer_subclass_that_saves_its_own_way_is_not_patched() -> None:
    from transformers import Trainer
    from trl import SFTTrainer

    class Own(SFTTrainer):
        def _save_checkpoint(self, model, trial):  # noqa: ANN001, ANN202
            pass

    class Calls(SFTTrainer):
        def _save_checkpoint(self, model, trial):  # noqa: ANN001, ANN202
            return super()._save_checkpoint(model, trial)

    assert async_save.unavailable(fast.trainer_class(SFTTrainer)) is None
    assert async_save.unavailable(Calls) is None and async_save.unavailable(Trainer) is None
    assert "Own._save_checkpoint saves its own way" in async_save.unavailable(fast.trainer_class(Own))


def test_a_writer_function_kept_past_the_save_writes_at_once(tmp_path) -> None:
    import safetensors.torch

    writer, owner = async_save.Writer(), _State()
    with writer.deferred(owner):
        kept_save, kept_file, kept_json = torch.save, safetensors.torch.save_file, owner.state.save_to_json
    writer.wait()
    kept_save({"w": torch.zeros(BIG)}, tmp_path / "late.pt")
    kept_file({"w": torch.zeros(BIG)}, str(tmp_path / "late.safetensors"))
    kept_json(str(tmp_path / "trainer_state.json"))
    assert {p.name for p in tmp_path.iterdir()} == {"late.pt", "late.safetensors", "trainer_state.json"}


def test_a_save_inside_a_save_joins_it(tmp_path) -> None:
    writer, owner, written = async_save.Writer(), _State(), {}

    def save() -> None:
        with writer.deferred(owner):
            torch.save({"w": torch.zeros(BIG)}, tmp_path / "outer.pt")
            with writer.deferred(owner):
                torch.save({"w": torch.zeros(BIG)}, tmp_path / "inner.pt")
            written["inner"] = (tmp_path / "inner.pt").is_file()
            written["outer"] = (tmp_path / "outer.pt").is_file()

    thread = threading.Thread(target=save)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the inner save waited for the outer one"
    writer.wait()
    assert written == {"inner": False, "outer": False}  # the inner save's writes join the outer one's
    assert (tmp_path / "inner.pt").is_file() and (tmp_path / "outer.pt").is_file()


def test_writes_of_other_threads_state_and_rotation_happen_at_once(tmp_path) -> None:
    import safetensors.torch
    import transformers.trainer

    writer, owner, seen = async_save.Writer(), _State(), {}
    (tmp_path / "checkpoint-1").mkdir()
    (tmp_path / "checkpoint-2").mkdir()

    def other() -> None:
        safetensors.torch.save_file({"w": torch.zeros(BIG)}, str(tmp_path / "other.safetensors"))
        owner.state.save_to_json(str(tmp_path / "trainer_state.json"))
        transformers.trainer.rotate_checkpoints(str(tmp_path), save_total_limit=1)
        seen["names"] = {p.name for p in tmp_path.iterdir()}

    with writer.deferred(owner):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    writer.wait()
    assert seen["names"] == {"other.safetensors", "trainer_state.json", "checkpoint-2"}


def test_a_failed_save_writes_what_it_queued_and_the_next_save_raises_a_failed_write(
    tmp_path, monkeypatch
) -> None:
    writer, owner = async_save.Writer(), _State()
    with pytest.raises(KeyError), writer.deferred(owner):
        torch.save({"w": torch.zeros(BIG)}, tmp_path / "queued.pt")
        raise KeyError("the save failed")
    assert (tmp_path / "queued.pt").is_file()  # as a synchronous save had written it

    def full(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(28, "No space left on device")

    real = torch.save
    monkeypatch.setattr(torch, "save", full)
    with writer.deferred(owner):
        torch.save({"w": torch.zeros(BIG)}, tmp_path / "failed.pt")
    monkeypatch.setattr(torch, "save", real)
    with pytest.raises(OSError, match="No space left"), writer.deferred(owner):
        pass


def test_safetensors_refusals_come_at_once(tmp_path) -> None:
    import safetensors.torch

    weight = torch.zeros(BIG)
    with async_save.Writer().deferred(_State()):
        with pytest.raises(RuntimeError, match="share memory"):
            safetensors.torch.save_file({"a": weight, "b": weight}, str(tmp_path / "shared.safetensors"))
        with pytest.raises(ValueError, match="contiguous"):
            safetensors.torch.save_file({"t": torch.zeros(64, 64).t()}, str(tmp_path / "strided.safetensors"))


def test_an_object_beside_a_large_tensor_is_written_at_once(tmp_path) -> None:
    writer = async_save.Writer()
    with writer.deferred(_State()):
        torch.save({"w": torch.zeros(BIG), "settings": Settings()}, tmp_path / "mixed.pt")
        written = (tmp_path / "mixed.pt").is_file()
    writer.wait()
    assert written


def test_callbacks_at_the_end_of_training_find_the_last_checkpoint_complete(tmp_path, slow_weights) -> None:
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    seen = []

    class Publish(TrainerCallback):
        def on_train_end(self, args, state, control, **kw):  # noqa: ANN001, ANN003, ANN201
            seen.append(checkpoints.latest_complete(Path(args.output_dir)))

    _run(tmp_path, background=True, callbacks=[Publish()], wait_after_train=False)
    assert seen == [tmp_path / "checkpoint-6"]
    assert not async_save.reads_checkpoints(ProgressCallback(), "on_train_end")
    assert not async_save.reads_checkpoints(PrinterCallback(), "on_train_end")
    Publish.odin_reads_checkpoints = False
    assert not async_save.reads_checkpoints(Publish(), "on_train_end")


def test_a_callback_that_forces_a_wait_is_named_once(caplog) -> None:
    from transformers import TrainerCallback

    class Upload(TrainerCallback):
        def on_save(self, args, state, control, **kw):  # noqa: ANN001, ANN003, ANN201
            pass

    with caplog.at_level("INFO", logger="odin_slm"):
        assert async_save.reads_checkpoints(Upload()) and async_save.reads_checkpoints(Upload())
    assert [r.getMessage() for r in caplog.records if "Upload.on_save" in r.getMessage()] == [
        caplog.records[0].getMessage()
    ]
    assert "odin_reads_checkpoints = False" in caplog.records[0].getMessage()


def test_an_error_in_training_waits_for_the_checkpoint_in_flight(tmp_path, slow_weights) -> None:
    from transformers import TrainerCallback

    class Fail(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001, ANN003, ANN201
            if state.global_step == 4:
                raise RuntimeError("CUDA error: an illegal memory access")

    with pytest.raises(RuntimeError, match="illegal memory access"):
        _run(tmp_path, background=True, callbacks=[Fail()], wait_after_train=False)
    assert checkpoints.latest_complete(tmp_path) == tmp_path / "checkpoint-3"


def test_a_lora_checkpoint_written_in_the_background_holds_the_adapter(tmp_path) -> None:
    from peft import LoraConfig
    from safetensors.torch import load_file

    lora = {"peft_config": LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")}
    sync = _run(tmp_path / "sync", background=False, **lora)
    _run(tmp_path / "background", background=True, **lora)
    del sync
    for step in (3, 6):
        a = load_file(tmp_path / "sync" / f"checkpoint-{step}" / "adapter_model.safetensors")
        b = load_file(tmp_path / "background" / f"checkpoint-{step}" / "adapter_model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("cgroup", "files", "room"),
    [
        (
            "0::/user.slice/job\n",
            {
                "memory.max": "max",
                "user.slice/memory.max": "1000",
                "user.slice/memory.current": "400",
                "user.slice/job/memory.max": "max",
            },
            600,
        ),
        (
            "0::/job\n",
            {
                "job/memory.max": "5000",
                "job/memory.current": "1000",
                "memory.max": "3000",
                "memory.current": "2500",
            },
            500,
        ),
        ("0::/\n", {"memory.max": "max"}, None),
        (
            "12:cpu,cpuacct:/a\n4:memory:/docker/x\n",
            {
                "memory/docker/x/memory.limit_in_bytes": "2000",
                "memory/docker/x/memory.usage_in_bytes": "500",
                "memory/memory.limit_in_bytes": str(1 << 62),
            },
            1500,
        ),
    ],
)
def test_the_memory_budget_counts_the_limits_of_the_processs_cgroup_and_those_above(
    tmp_path, cgroup, files, room
) -> None:
    (tmp_path / "cgroup").write_text(cgroup)
    for name, text in files.items():
        (tmp_path / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / name).write_text(text)
    assert async_save._cgroup_room(str(tmp_path / "cgroup"), str(tmp_path / "fs")) == room


@pytest.mark.parametrize("reserved_now", [60, 40])  # GiB: the run's peak still held, or given back since
def test_device_copies_leave_the_runs_peak_free_when_other_processes_hold_gpu_memory(
    monkeypatch, reserved_now
) -> None:
    # an 80 GiB GPU: another process holds 10 GiB, the run's peak reserved 60 GiB. A later step can take
    # that peak again, so 80 - 10 - 60 = 10 GiB are spare, less the margin (counting from the GPU's total
    # memory, 18 GiB looked spare, and copies held until written could make the next step run out)
    gib = 1 << 30
    free = (80 - 10 - reserved_now) * gib
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * gib))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 60 * gib)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved_now * gib)
    assert async_save._gpu_spare(0) == 10 * gib - async_save.GPU_MARGIN


class _GpuTensor:
    """Stands in for a CUDA tensor of ``size`` bytes (this torch may have no GPU): what ``_Batch.copy``
    reads of one, and a clone that says it is a copy on the GPU."""

    device = torch.device("cuda", 0)

    def __init__(self, size: int) -> None:
        self.size, self.shape, self.dtype = size, (size,), torch.uint8

    def numel(self) -> int:
        return self.size

    def element_size(self) -> int:
        return 1

    def detach(self):  # noqa: ANN201
        return self

    def clone(self):  # noqa: ANN201
        return ("copy on the GPU", self.size)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the stand-in cannot be copied into real pinned memory")
def test_one_saves_device_copies_together_stay_within_the_spare_gpu_memory(monkeypatch) -> None:
    # A save writes the weights, then the optimizer state. Copies served from the allocator's cache (the
    # step's freed activations) change none of the memory counters, so reading the spare memory again for
    # the second write found it unchanged, and on one H200 both copies went to the GPU and the next step
    # ran out of memory. The spare memory is now spent down within a save.
    import contextlib

    gib = 1 << 30
    monkeypatch.setattr(async_save, "_gpu_spare", lambda device: 10 * gib)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "Event", lambda: type("Event", (), {"record": lambda self: None})())
    batch = async_save._Batch("device")
    assert batch.copy([_GpuTensor(6 * gib)]) == [("copy on the GPU", 6 * gib)]
    # the optimizer state goes to pinned host memory, which this torch without a GPU cannot allocate:
    # then it is written at once (None)
    assert batch.copy([_GpuTensor(6 * gib)]) is None
    assert batch.copy([_GpuTensor(3 * gib)]) == [("copy on the GPU", 3 * gib)]  # what is still spare
    assert async_save._Batch("device").copy([_GpuTensor(6 * gib)]) is not None  # the next save: read again


def test_pinned_copies_are_charged_as_the_host_allocator_rounds_them() -> None:
    assert async_save._pinned_size(torch.zeros(3 << 18)) == 4 << 20  # 3 MiB of floats: a 4 MiB block
    assert async_save._pinned_size(torch.zeros(1 << 18)) == 1 << 20


class _Reservations:
    """Records, for a run, the tensors each reservation asked for, the step after which it came and how many
    of the saves' copies were made by then, and the tensors each save copied. The reservation's clock
    (``clock``, seconds) moves only where its callback (``step``, before odin's) says: ``step_s`` a step."""

    def __init__(self, monkeypatch, step_s: float = 0.0) -> None:  # noqa: ANN001
        from transformers import TrainerCallback

        self.reserved, self.steps, self.copies_then, self.copied, self.saves = [], [], [], [], []
        self.clock, now, real_copy, record = [0.0], [0], async_save._Batch.copy, self

        class Step(TrainerCallback):
            odin_reads_checkpoints = False

            def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN202
                now[0] = state.global_step
                record.clock[0] += step_s

            def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN202
                record.saves.append(state.global_step)

        def copy(batch, tensors):  # noqa: ANN001, ANN202
            if tensors:
                record.copied.append([t.numel() * t.element_size() for t in tensors])
            return real_copy(batch, tensors)

        def reserve(writer, tensors):  # noqa: ANN001, ANN202
            record.reserved.append(list(tensors))
            record.steps.append(now[0])
            record.copies_then.append(len(record.copied))
            return True

        self.step = Step()
        monkeypatch.setattr(async_save, "MIN_BYTES", 0)  # the tiny model's optimizer state is copied too
        monkeypatch.setattr(async_save, "_clock", lambda: self.clock[0])
        monkeypatch.setattr(async_save.Writer, "reserve", reserve)
        monkeypatch.setattr(async_save._Batch, "copy", copy)


def _reserved_and_copied(tmp_path, monkeypatch, steps=None, step_s=0.0, **config):  # noqa: ANN001, ANN202
    """The tensors the run asked to reserve pinned memory for, and those its saves copied; ``steps``, a
    list, gets the step after which each reservation was asked for; each step takes ``step_s`` longer."""
    record = _Reservations(monkeypatch, step_s)
    _run(tmp_path, background=True, callbacks=[record.step], **{"max_steps": 3, **config})
    if steps is not None:
        steps.extend(record.steps)
    return record.reserved, record.copied


def _covers(reserved: list, copied: list) -> bool:
    """Every pinned block the save's copies take is among the reserved ones."""
    from collections import Counter

    have = Counter(async_save._pinned_size(t) for t in reserved)
    need = Counter(async_save._block(size) for sizes in copied for size in sizes)
    return not need - have


def test_pinned_memory_is_reserved_once_after_the_first_step_for_what_the_first_save_copies(
    tmp_path, monkeypatch
) -> None:
    reserved, copied = _reserved_and_copied(tmp_path, monkeypatch)
    assert len(reserved) == 1 and copied  # once, and the save copied weights and optimizer state
    assert len(copied) == 2 and _covers(reserved[0], copied)
    # the weights (one block per distinct tensor) and Adam's two moments and step per trained weight
    assert len(reserved[0]) == 4 * sum(1 for _ in _tiny_parameters())


def _tiny_parameters():  # noqa: ANN202
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(_tiny_config()).parameters()


def test_a_lora_run_reserves_pinned_memory_for_its_adapter_only(tmp_path, monkeypatch) -> None:
    from peft import LoraConfig

    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    reserved, copied = _reserved_and_copied(tmp_path, monkeypatch, peft_config=lora)
    assert len(reserved) == 1 and _covers(reserved[0], copied)
    trained = 2 * 2 * 2  # two layers, two projections, A and B
    assert len(reserved[0]) == trained * 4 and all(t.numel() < 32 * 32 for t in reserved[0])


def test_a_run_that_never_saves_reserves_nothing(tmp_path, monkeypatch) -> None:
    reserved, copied = _reserved_and_copied(tmp_path, monkeypatch, save_strategy="no")
    assert reserved == [] and copied == []


def test_a_reservation_without_gpu_tensors_or_pinned_memory_does_nothing(caplog) -> None:
    writer = async_save.Writer()
    writer.reserve([torch.zeros(BIG)])  # CPU tensors are not copied into pinned memory
    assert writer._pool._work_queue.empty() and not writer._pool._threads
    if not torch.cuda.is_available():  # this torch cannot pin memory: the first save allocates, as before
        with caplog.at_level("INFO", logger="odin_slm"):
            async_save._reserve([1 << 20])
        assert "no pinned memory reserved" in caplog.text


def test_pinned_memory_is_reserved_before_each_save_where_steps_are_short(tmp_path, monkeypatch) -> None:
    # CUDA graph captures empty torch's pinned cache between saves: each save gets its own reservation,
    # the last step's save included, and nothing past it
    record = _Reservations(monkeypatch)
    _run(tmp_path, background=True, callbacks=[record.step], max_steps=8)
    assert record.saves == [3, 6, 8] and len(record.copied) == 3 * 2
    # asked for as the step begins: after steps 2, 3 and 6, the last two once the save of that step had
    # made its copies (two a save), so that the reservation and the copies never compete for the cache
    assert record.steps == [2, 3, 6] and record.copies_then == [0, 2, 4]


def test_no_reservation_while_the_save_is_further_off_than_the_time_ahead(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(async_save, "RESERVE_AHEAD_S", 0.5)
    reserved, copied = _reserved_and_copied(tmp_path, monkeypatch, step_s=1.0)
    assert reserved == [] and len(copied) == 2


def test_each_epochs_save_gets_its_own_reservation(tmp_path, monkeypatch) -> None:
    # 16 rows, 2 a step: epochs of 8 steps, each saved at its end; reserved ahead of each once a step's
    # time is known (after the second step of the run) and after the previous epoch's save
    steps = []
    reserved, copied = _reserved_and_copied(
        tmp_path, monkeypatch, steps, max_steps=-1, num_train_epochs=2, save_strategy="epoch"
    )
    assert steps == [2, 8] and len(copied) == 2 * 2
    assert all(_covers(r, copied[2 * i : 2 * i + 2]) for i, r in enumerate(reserved))  # two copies a save


def test_an_epoch_cut_short_by_max_steps_is_reserved_for_ahead_of_its_last_step(
    tmp_path, monkeypatch
) -> None:
    # steps of 0.4 s, with 0.6 s ahead: only the step before a save is near enough. A 5-step run
    # of 8-step epochs saves at step 5, so the reservation comes after step 4 (from the steps left, not
    # the epoch's: its end is 4 steps off)
    monkeypatch.setattr(async_save, "RESERVE_AHEAD_S", 0.6)
    steps = []
    reserved, copied = _reserved_and_copied(
        tmp_path, monkeypatch, steps, step_s=0.4, max_steps=5, num_train_epochs=1, save_strategy="epoch"
    )
    assert steps == [4] and len(copied) == 2 and _covers(reserved[0], copied)


def test_a_second_train_call_reserves_afresh(tmp_path, monkeypatch) -> None:
    # a trainer can train again, resuming from a checkpoint of its interrupted run: the reservation it had
    # made for a save that never came is made again
    from transformers import TrainerCallback

    class Interrupted(Exception):
        pass

    stop = [True]

    class Interrupt(TrainerCallback):  # the run dies at the end of step 6, before its save
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN202
            if stop[0] and state.global_step == 6:
                raise Interrupted

    monkeypatch.setattr(async_save, "RESERVE_AHEAD_S", 0.6)
    record = _Reservations(monkeypatch, step_s=0.4)
    trainer = _trainer(tmp_path, background=True, callbacks=[record.step, Interrupt()], max_steps=8)
    with pytest.raises(Interrupted):
        trainer.train()
    assert record.steps == [2, 5] and record.saves == [3]  # reserved for the saves at 3 and 6
    stop[0] = False
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3"))
    assert record.saves == [3, 6, 8] and record.steps == [2, 5, 5, 7]


def test_the_saves_of_passes_over_a_dataset_without_a_length_are_reserved_for(tmp_path, monkeypatch) -> None:
    # Without a length, the Trainer counts an epoch as max_steps steps, so a pass over the data ends (and
    # saves) at a fraction of an epoch (0.4, 1.4 here). After the first pass its length is known: each
    # later pass's save gets its reservation the step before, and so does the last step's.
    monkeypatch.setattr(async_save, "RESERVE_AHEAD_S", 0.7)
    record = _Reservations(monkeypatch, step_s=0.4)
    _run(
        tmp_path, background=True, callbacks=[record.step], iterable=True, max_steps=20, save_strategy="epoch"
    )
    assert record.saves == [8, 16, 20] and record.steps == [15, 19]


def test_an_epoch_whose_last_update_is_short_is_reserved_for(tmp_path, monkeypatch) -> None:
    # 14 rows, 2 a batch, 3 batches an update: updates of 3, 3 and 1 batches; only the step before a save
    # is near enough (steps of 1 s, 1.5 s ahead). Each epoch's save gets its reservation the step before
    monkeypatch.setattr(async_save, "RESERVE_AHEAD_S", 1.5)
    record = _Reservations(monkeypatch, step_s=1.0)
    _run(
        tmp_path,
        background=True,
        callbacks=[record.step],
        rows=14,
        gradient_accumulation_steps=3,
        max_steps=-1,
        num_train_epochs=2,
        save_strategy="epoch",
    )
    assert record.saves == [3, 6] and record.steps == [2, 5]


def test_a_reservation_never_allocates_beside_the_next_saves_copies(tmp_path, monkeypatch) -> None:
    # A reservation waits behind the write of the previous save in the writer's one thread. The next save
    # cancels it if it has not started and waits for it if it has: never both allocating at once.
    import time

    events, gate = [], threading.Event()

    def reserve(sizes):  # noqa: ANN001, ANN202
        events.append("reservation starts")
        time.sleep(0.3)
        events.append("reservation ends")

    monkeypatch.setattr(async_save, "_reserve", reserve)
    for started in (False, True):
        events.clear()
        gate.clear()
        writer = async_save.Writer("pinned")
        writer._pool.submit(gate.wait)  # a write still going in the writer's thread
        threading.Timer(5, gate.set).start()  # whatever happens below, the thread ends
        assert writer.reserve([_GpuTensor(1 << 20)])
        assert not writer.reserve([_GpuTensor(1 << 20)])  # one at a time
        if started:
            gate.set()
            while not events:
                time.sleep(0.01)
        with writer.deferred(_State()):
            events.append("the save copies")
        gate.set()
        time.sleep(0.4)
        assert events == (
            ["reservation starts", "reservation ends", "the save copies"] if started else ["the save copies"]
        )


def test_a_save_that_holds_the_loop_up_is_not_counted_as_a_step(tmp_path, monkeypatch) -> None:
    # saves every 2 steps that hold the loop up 0.5 s: the step after a save is still one step's time
    from transformers import TrainerCallback

    monkeypatch.setattr(async_save, "RESERVE_AHEAD_S", 0.6)
    record = _Reservations(monkeypatch, step_s=0.4)

    class SlowSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN202
            record.clock[0] += 0.5

    _run(tmp_path, background=True, callbacks=[record.step, SlowSave()], max_steps=8, save_steps=2)
    assert record.saves == [2, 4, 6, 8] and record.steps == [3, 5, 7]


def test_a_run_that_saves_at_its_last_step_only_reserves_before_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(async_save, "RESERVE_AHEAD_S", 0.6)
    steps = []
    _reserved_and_copied(tmp_path, monkeypatch, steps, step_s=0.4, max_steps=8, save_steps=0)
    assert steps == [7]


def test_a_run_that_saves_only_the_model_reserves_for_its_weights_only(tmp_path, monkeypatch) -> None:
    reserved, copied = _reserved_and_copied(tmp_path, monkeypatch, save_only_model=True)
    assert len(reserved) == 1 and _covers(reserved[0], copied)
    assert len(reserved[0]) == sum(1 for _ in _tiny_parameters())


def test_an_interrupted_wait_leaves_the_checkpoint_in_flight_for_the_next_wait(tmp_path, monkeypatch) -> None:
    import os
    import signal

    gate, real = threading.Event(), torch.save
    monkeypatch.setattr(torch, "save", lambda *a, **k: (gate.wait(60), real(*a, **k)))  # a slow disk
    writer, owner = async_save.Writer(), _State()
    with writer.deferred(owner):
        torch.save({"w": torch.zeros(BIG)}, tmp_path / "optimizer.pt")
    # Ctrl-C during the wait (in a notebook, say): a real SIGINT, which wakes the waiting thread
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        writer.wait()
    threading.Timer(0.2, gate.set).start()
    writer.wait()  # the next train() waits for the same checkpoint
    assert (tmp_path / "optimizer.pt").is_file()


def test_a_sparse_tensor_is_written_at_once(tmp_path) -> None:
    sparse = {"mask": torch.eye(1024).to_sparse()}  # 1024 values and their indices: above MIN_BYTES
    writer = async_save.Writer()
    with writer.deferred(_State()):
        torch.save(sparse, tmp_path / "optimizer.pt")
        written = (tmp_path / "optimizer.pt").is_file()
    writer.wait()
    assert written and torch.equal(torch.load(tmp_path / "optimizer.pt")["mask"].to_dense(), torch.eye(1024))
