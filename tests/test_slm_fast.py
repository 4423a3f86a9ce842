"""odin_slm.fast on CPU: when the levers are chosen, what each does to the model, and that none changes the math."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from odin_slm import fast  # noqa: E402

BIG, SHIPPED = 8 * 2048, 32 * 128  # the benchmark's step; the shipped GPU configs' step


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch) -> None:
    """A tuned model's trainer saves compile caches to $ODIN_CACHE: never the user's own."""
    monkeypatch.setenv("ODIN_CACHE", str(tmp_path / "odin-cache"))


@pytest.mark.parametrize(
    ("requested", "engine", "cuda", "tokens", "steps", "expected"),
    [
        (None, "trl", True, BIG, 200, True),  # where the levers were measured to pay
        (
            None,
            "trl",
            True,
            SHIPPED,
            200,
            True,
        ),  # the shipped configs: faster end to end, evaluation included
        (None, "trl", True, SHIPPED, 149, False),  # too short to earn back the compile
        (None, "trl", True, SHIPPED, 100, False),  # measured slower than plain with empty compile caches
        (None, "trl", True, SHIPPED, 150, True),
        (None, "trl", True, BIG, 30, False),  # too short to earn back the compile
        (True, "trl", True, SHIPPED, 10, True),  # the user's word wins
        (False, "trl", True, BIG, 1000, False),
        (True, "trl", False, BIG, 1000, False),  # never on CPU
        (True, "loop", True, BIG, 1000, False),  # only the trl engine has them
        (None, "unsloth", True, BIG, 1000, False),
    ],
)
def test_the_levers_are_on_where_they_were_measured_to_pay(
    requested, engine, cuda, tokens, steps, expected
) -> None:
    got = fast.wanted(requested, engine=engine, cuda=cuda, tokens_per_step=tokens, steps=steps)
    assert got is expected


def _tiny(layers: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return LlamaForCausalLM(config)


class _Args:
    bf16 = False
    optim = "adamw_torch"
    gradient_checkpointing = False


def _grads(model) -> dict[str, torch.Tensor]:
    model.train()
    ids = torch.arange(24).reshape(2, 12) % 64
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_checkpoint_layers_recomputes_the_first_layers_and_changes_no_gradient() -> None:
    plain = _grads(_tiny())
    model = _tiny()
    plan = fast.tune(model, _Args(), lora=False, checkpoint_layers=0.5)
    assert "checkpoint_layers=2/4" in plan.on
    flags = [layer.gradient_checkpointing for layer in model.model.layers]
    assert flags == [True, True, False, False]
    checkpointed = _grads(model)
    assert checkpointed.keys() == plain.keys()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, msg=name)


def test_on_cpu_every_kernel_lever_stays_off_with_its_reason() -> None:
    model = _tiny(2)
    args = _Args()
    plan = fast.tune(model, args, lora=True)
    assert plan.off["compile_layers"] == "needs CUDA and Triton"
    assert plan.off["fused_linear_cross_entropy"] == "needs CUDA and Triton"
    assert plan.off["lora_bf16_compute"] == "needs bf16 autocast"
    assert plan.off["memory_budget"] == "needs compile_layers"
    assert args.bf16 is False and args.gradient_checkpointing is False
    assert not any(layer.gradient_checkpointing for layer in model.model.layers)


def test_compiled_code_runs_eager_inside_eager() -> None:
    if not hasattr(torch.compiler, "set_stance"):
        pytest.skip("torch without compiler stances")
    compiled = []

    def backend(gm, example_inputs):  # noqa: ANN001
        compiled.append(gm)
        return gm.forward

    torch._dynamo.reset()
    step = torch.compile(lambda x: x * 2 + 1, backend=backend)
    with fast.eager():
        assert step(torch.ones(3)).tolist() == [3.0, 3.0, 3.0]
    assert compiled == []  # generation and evaluation never compile
    step(torch.ones(3))
    assert len(compiled) == 1  # and training still does


def test_compiled_layers_pad_rows_to_a_multiple_unless_the_run_set_one(monkeypatch) -> None:
    # The compile itself is CUDA's; here only the choice is under test.
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "_compile_layers", lambda model, mode="default", backend="inductor": None)
    args = _Args()
    args.pad_to_multiple_of = "auto"
    plan = fast.tune(_tiny(2), args, lora=False)
    assert "pad_to_multiple_of=64" in plan.on and args.pad_to_multiple_of == 64
    args = _Args()
    args.pad_to_multiple_of = 8
    plan = fast.tune(_tiny(2), args, lora=False)
    assert plan.off["pad_to_multiple_of"] == "set by the run (8)" and args.pad_to_multiple_of == 8
    args = _Args()
    args.pad_to_multiple_of, args.packing = None, True
    plan = fast.tune(_tiny(2), args, lora=False)
    assert (
        plan.off["pad_to_multiple_of"] == "packing: TRL's collator pads" and args.pad_to_multiple_of is None
    )
    args = _Args()
    args.pad_to_multiple_of = None
    plan = fast.tune(_tiny(2), args, lora=False, compile_layers=False)
    assert plan.off["pad_to_multiple_of"] == "needs compile_layers" and args.pad_to_multiple_of is None


def test_the_flop_estimate_is_the_trainers_and_counts_the_parameters_once(tmp_path) -> None:
    from transformers import Trainer, TrainingArguments

    model = _tiny(2)
    counted = []
    count = model.num_parameters
    model.num_parameters = lambda **kw: counted.append(kw) or count(**kw)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    trainer = fast.trainer_class(Trainer)(model=model, args=args)
    for rows, length in [(2, 12), (4, 7), (1, 30), (3, 1)]:
        inputs = {"input_ids": torch.zeros(rows, length, dtype=torch.long)}
        assert trainer.floating_point_ops(inputs) == Trainer.floating_point_ops(trainer, inputs) > 0
    assert len(counted) == 4 + 1  # the base class's four, odin's one
    assert trainer.floating_point_ops({"labels": torch.zeros(2, 3)}) == 0  # no input ids: no estimate


def test_the_lora_memory_budget_is_kept_for_large_activations(monkeypatch) -> None:
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "_compile_layers", lambda model, mode="default", backend="inductor": None)
    budgets = []
    monkeypatch.setattr(fast, "_set_memory_budget", budgets.append)
    args = _Args()
    args.per_device_train_batch_size, args.max_length = 32, 128  # 32 x 128 x 32 hidden x 2 layers: small
    plan = fast.tune(_tiny(2), args, lora=True)
    assert plan.off["memory_budget"].startswith("activations are small") and budgets == []
    monkeypatch.setattr(fast, "LARGE_ACTIVATIONS", 1e5)
    plan = fast.tune(_tiny(2), args, lora=True)
    assert "memory_budget=0.4" in plan.on and budgets == [0.4]
    monkeypatch.setattr(fast, "LARGE_ACTIVATIONS", 1e8)
    plan = fast.tune(_tiny(2), args, lora=True, lora_memory_budget=0.5)  # asked for: kept
    assert "memory_budget=0.5" in plan.on and budgets == [0.4, 0.5]


@pytest.mark.parametrize(("input_grads", "graphs"), [(True, 1), (False, 2)])
def test_one_compiled_graph_serves_every_lora_layer(monkeypatch, input_grads, graphs) -> None:
    """Real dynamo on CPU (its eager backend): LoRA's frozen embeddings made layer 0 a graph of its own."""
    peft = pytest.importorskip("peft")
    from torch._dynamo.utils import counters

    def compile_eager(model, mode="default", backend="inductor"):  # noqa: ANN001
        for layer in fast._decoder_layers(model):
            layer.compile(backend="eager")

    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "_compile_layers", compile_eager)
    monkeypatch.setattr(fast, "_set_memory_budget", lambda budget: None)
    model = peft.get_peft_model(
        _tiny(3),
        peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM"),
    )
    args = _Args()
    plan = fast.tune(model, args, lora=True, lora_input_grads=input_grads)
    assert ("lora_input_grads" in plan.on) is input_grads
    torch._dynamo.reset()
    counters.clear()
    ids = torch.arange(24).reshape(2, 12) % 64
    for _ in range(2):
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    assert counters["stats"]["unique_graphs"] == graphs
    torch._dynamo.reset()


def test_lora_input_grads_only_where_activations_are_small(monkeypatch) -> None:
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "_compile_layers", lambda model, mode="default", backend="inductor": None)
    monkeypatch.setattr(fast, "_set_memory_budget", lambda budget: None)
    monkeypatch.setattr(fast, "LARGE_ACTIVATIONS", 1e5)
    args = _Args()
    args.per_device_train_batch_size, args.max_length = 32, 128
    plan = fast.tune(_tiny(2), args, lora=True)
    assert plan.off["lora_input_grads"].startswith("activations are large")
    assert "lora_input_grads" in fast.tune(_tiny(2), args, lora=True, lora_input_grads=True).on


def test_the_runs_own_precision_optimizer_and_checkpointing_are_kept(monkeypatch) -> None:
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: False)
    monkeypatch.setattr(fast, "_bf16_supported", lambda: True)
    args = _Args()
    args.fp16, args.optim = True, "adamw_8bit"
    plan = fast.tune(_tiny(2), args, lora=False)
    assert args.bf16 is False and plan.off["bf16"] == "fp16 set by the run"
    assert args.optim == "adamw_8bit" and "adamw_8bit" in plan.off["optim=adamw_torch_fused"]
    args = _Args()
    fast.tune(_tiny(2), args, lora=False)
    assert args.bf16 is True and args.optim == "adamw_torch_fused"  # what the levers were measured with
    monkeypatch.setattr(fast, "_bf16_supported", lambda: False)  # e.g. a V100 or T4
    args = _Args()
    assert fast.tune(_tiny(2), args, lora=False).off["bf16"] == "this GPU has no bf16" and args.bf16 is False
    args = _Args()
    args.gradient_checkpointing = True  # odin's trainer defaults to False: the run asked for it
    plan = fast.tune(_tiny(2), args, lora=True, **fast.kept_from_run(args, lora=True))
    assert args.gradient_checkpointing is True and "gradient_checkpointing" in plan.on
    assert fast.kept_from_run(_Args(), lora=False) == {}


def test_a_later_tune_does_not_inherit_an_earlier_runs_memory_budget(monkeypatch) -> None:
    import torch._functorch.config as functorch_config

    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "_compile_layers", lambda model, mode="default", backend="inductor": None)
    monkeypatch.setattr(fast, "_BUDGET_BEFORE", [])
    args = _Args()
    args.per_device_train_batch_size, args.max_length = 32, 128
    # torch's own patch: monkeypatch would undo by deleting the setting (it is not in the module's
    # __dict__), which hides it from every later compile in this process.
    with functorch_config.patch(activation_memory_budget=1.0):
        assert "memory_budget=0.4" in fast.tune(_tiny(2), args, lora=True, lora_memory_budget=0.4).on
        assert functorch_config.activation_memory_budget == 0.4
        assert fast.tune(_tiny(2), args, lora=True).off["memory_budget"].startswith("activations are small")
        assert functorch_config.activation_memory_budget == 1.0


@pytest.mark.parametrize(
    ("model_flag", "fsdp", "env", "reason"),
    [
        ("is_loaded_in_4bit", None, "", "not measured with quantized weights"),
        (None, "full_shard", "", "not measured under FSDP"),
        (None, None, "true", "not measured under FSDP"),  # accelerate launch with an FSDP config
    ],
)
def test_layers_are_not_compiled_where_that_was_never_measured(
    monkeypatch, model_flag, fsdp, env, reason
) -> None:
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    compiled = []
    monkeypatch.setattr(
        fast, "_compile_layers", lambda model, mode="default", backend="inductor": compiled.append(model)
    )
    monkeypatch.setenv("ACCELERATE_USE_FSDP", env)
    model = _tiny(2)
    if model_flag:
        setattr(model, model_flag, True)
    args = _Args()
    args.fsdp = fsdp
    assert fast.tune(model, args, lora=True).off["compile_layers"] == reason and compiled == []
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "")
    on = fast.tune(_tiny(2), _Args(), lora=False).on  # the measured setup
    assert "compile_layers(mode=reduce-overhead)" in on


def test_under_ddp_the_run_skips_the_unused_parameter_search_unless_it_set_it(monkeypatch) -> None:
    from trl import SFTConfig

    def config(**kw):  # built before WORLD_SIZE is set: accelerate would look for a process group
        return SFTConfig(output_dir="unused", report_to="none", use_cpu=True, **kw)

    plain, own, moe, deepspeed, single = (
        config(),
        config(ddp_find_unused_parameters=True),
        config(),
        config(),
        config(),
    )
    monkeypatch.setattr(fast, "_cuda", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert "ddp_lean" in fast.tune(_tiny(2), plain, lora=False).on
    assert plain.ddp_find_unused_parameters is False
    assert plain.ddp_broadcast_buffers is None  # left to DDP (torch 2.13 deprecates the flag)
    assert fast.tune(_tiny(2), own, lora=True).off["ddp_lean"] == "set by the run"
    assert own.ddp_find_unused_parameters is True
    experts = _tiny(2)
    experts.config.num_local_experts = 8  # an expert that no token reached has no gradient in that step
    assert fast.tune(experts, moe, lora=False).off["ddp_lean"].startswith("mixture of experts")
    assert moe.ddp_find_unused_parameters is None
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert fast.tune(_tiny(2), deepspeed, lora=False).off["ddp_lean"] == "not DDP"
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert fast.tune(_tiny(2), single, lora=False).off["ddp_lean"] == "one process"
    assert single.ddp_find_unused_parameters is None


def test_the_fused_loss_never_bypasses_ddps_forward(monkeypatch, tmp_path) -> None:
    """The fused loss calls the decoder inside the DDP wrapper, so DDP would reduce no gradient (each rank
    would train apart): under DDP the trainer uses the Trainer's own loss, and tune says why."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model = _tiny(2)
    model._odin_flce = True
    monkeypatch.setattr(fast, "_flce_loss", lambda trainer, model, inputs, n: "fused")

    class Base:
        def __init__(self) -> None:
            self.model = model
            self.args = _Args()
            self.accelerator = type(
                "Acc", (), {"unwrap_model": staticmethod(lambda m: getattr(m, "module", m))}
            )

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            return "trainer's own"

    trainer = fast.trainer_class(Base)()
    inputs = {"input_ids": torch.zeros(1, 4, dtype=torch.long), "labels": torch.zeros(1, 4, dtype=torch.long)}
    assert trainer.compute_loss(model, inputs) == "fused"
    assert (
        trainer.compute_loss(torch.nn.DataParallel(model), inputs) == "trainer's own"
    )  # one GPU would do all
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        assert trainer.compute_loss(DistributedDataParallel(model), inputs) == "trainer's own"
        compiled = torch.compile(DistributedDataParallel(model))  # accelerate compiles after wrapping
        assert trainer.compute_loss(compiled, inputs) == "trainer's own"
    finally:
        dist.destroy_process_group()
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: True)
    monkeypatch.setattr(fast, "_compile_layers", lambda model, mode="default", backend="inductor": None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    bf16 = _tiny(2).to(torch.bfloat16)
    plan = fast.tune(bf16, _Args(), lora=False)
    assert plan.off["fused_linear_cross_entropy"] == "more than one process (DDP)"
    assert bf16._odin_flce is False


def test_dataloader_workers_only_where_the_run_kept_the_default() -> None:
    from trl import SFTConfig

    args = SFTConfig(output_dir="unused", report_to="none", use_cpu=True)
    assert fast.tune(_tiny(2), args, lora=False).off["dataloader_workers"] == "disabled"  # the default
    assert args.dataloader_num_workers == 0
    plan = fast.tune(_tiny(2), args, lora=False, dataloader_workers=2)
    assert "dataloader_workers=2" in plan.on
    assert args.dataloader_num_workers == 2 and args.dataloader_persistent_workers is True
    own = SFTConfig(output_dir="unused", report_to="none", use_cpu=True, dataloader_num_workers=1)
    assert (
        fast.tune(_tiny(2), own, lora=False, dataloader_workers=2).off["dataloader_workers"]
        == "set by the run (1)"
    )
    assert own.dataloader_num_workers == 1


def _sft_run(tmp_path, trainer_cls, steps: int = 6, **config):  # noqa: ANN001, ANN202
    """A few logged steps of TRL's SFTTrainer on the tiny model (CPU): the trainer and its log history."""
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    from trl import SFTConfig

    extra = {key: config.pop(key) for key in ("eval_dataset", "callbacks") if key in config}
    vocab = {f"t{i}": i for i in range(64)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")), pad_token="t1", eos_token="t2"
    )
    torch.manual_seed(0)
    rows = [[(3 * i + j) % 60 + 2 for j in range(10 + i % 3)] for i in range(16)]
    args = SFTConfig(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        max_steps=steps,
        per_device_train_batch_size=2,
        logging_steps=1,
        learning_rate=1e-3,
        seed=0,
        **{"save_strategy": "no", **config},
    )
    model = _tiny(2)
    trainer = trainer_cls(
        model=model,
        args=args,
        eval_dataset=extra.get("eval_dataset"),
        callbacks=extra.get("callbacks"),
        train_dataset=Dataset.from_dict({"input_ids": rows}),
        processing_class=tokenizer,
    )
    trainer.train()
    return trainer, [h for h in trainer.state.log_history if "loss" in h]


def _nan_at(base: type, micro_step: int) -> type:
    """``base`` whose training_step reports a NaN loss at one micro-step (after a normal backward pass)."""

    class NaNAt(base):  # type: ignore[misc,valid-type]
        calls = 0

        def training_step(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            loss = super().training_step(*args, **kwargs)
            type(self).calls += 1
            return loss * float("nan") if type(self).calls == micro_step else loss

    return NaNAt


def test_the_device_nan_filter_logs_what_the_trainers_filter_logs(tmp_path, monkeypatch) -> None:
    """A NaN loss at step 3 counts as the mean since the last log, as in the Trainer's own filter, and the
    loss is never read on the host for it (the Trainer's flag is off during the steps, and restored after)."""
    from trl import SFTTrainer

    seen = []
    fast_cls = fast.trainer_class(_nan_at(SFTTrainer, 3))
    real_step = fast_cls.training_step

    def step(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        loss = real_step(self, *args, **kwargs)
        seen.append(self.args.logging_nan_inf_filter)  # what the Trainer's loop reads next
        return loss

    monkeypatch.setattr(fast_cls, "training_step", step)
    monkeypatch.setattr(fast, "_cuda", lambda: False)
    plain, plain_logs = _sft_run(tmp_path / "plain", _nan_at(SFTTrainer, 3))

    original = fast_cls.train

    def train(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        core = self.model
        core._odin_nan_filter = True  # what tune sets on CUDA
        return original(self, *args, **kwargs)

    monkeypatch.setattr(fast_cls, "train", train)
    odin, odin_logs = _sft_run(tmp_path / "odin", fast_cls)

    assert [h["loss"] for h in odin_logs] == [h["loss"] for h in plain_logs]
    assert all(h["loss"] == h["loss"] for h in odin_logs)  # no NaN reached the log
    assert seen == [False] * 6 and odin.args.logging_nan_inf_filter is True
    nan_free, _ = _sft_run(tmp_path / "free", SFTTrainer)
    assert plain_logs[2]["loss"] != [h for h in nan_free.state.log_history if "loss" in h][2]["loss"]


def test_inputs_are_copied_without_blocking_where_memory_is_pinned(monkeypatch) -> None:
    from trl import SFTConfig

    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_bf16_supported", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: False)
    args = SFTConfig(output_dir="unused", report_to="none", use_cpu=True)
    args.dataloader_pin_memory = True  # the default on CUDA (use_cpu turns it off)
    assert args.accelerator_config.non_blocking is False  # the Trainer's default
    plan = fast.tune(_tiny(2), args, lora=False)
    assert "non_blocking_inputs" in plan.on and args.accelerator_config.non_blocking is True
    assert "device_nan_filter" in plan.on
    pageable = SFTConfig(output_dir="unused", report_to="none", use_cpu=True, dataloader_pin_memory=False)
    plan = fast.tune(_tiny(2), pageable, lora=False)
    assert plan.off["non_blocking_inputs"] == "dataloader_pin_memory is off"
    assert pageable.accelerator_config.non_blocking is False
    unfiltered = SFTConfig(output_dir="unused", report_to="none", use_cpu=True, logging_nan_inf_filter=False)
    assert (
        fast.tune(_tiny(2), unfiltered, lora=False).off["device_nan_filter"]
        == "the run turned the filter off"
    )
    assert (
        fast.tune(
            _tiny(2),
            SFTConfig(output_dir="unused", report_to="none", use_cpu=True),
            lora=False,
            non_blocking_inputs=False,
        ).off["non_blocking_inputs"]
        == "disabled"
    )


@pytest.mark.parametrize("deferred", [False, True])
def test_the_fused_loss_keeps_trls_loss_and_token_count(tmp_path, monkeypatch, deferred) -> None:
    """With the fused loss (either kernel), the logged loss and TRL's num_tokens match TRL's own run, also
    on top of odin's deferred metrics (the trainer's own stack)."""
    from trl import SFTTrainer

    from odin_slm.metrics import deferred_metrics

    base = deferred_metrics(SFTTrainer) if deferred else SFTTrainer

    _, plain = _sft_run(tmp_path / "plain", SFTTrainer, steps=3)
    import importlib.util

    kernels = [k for k in fast.LOSS_KERNELS if k != "liger" or importlib.util.find_spec("liger_kernel")]
    assert "compiled" in kernels
    for kernel in kernels:
        cls = fast.trainer_class(base)
        original = cls.train

        def train(self, *args, kernel=kernel, original=original, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            self.model._odin_flce, self.model._odin_loss_kernel = True, kernel  # what tune sets on CUDA
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "train", train)
        _, fused = _sft_run(tmp_path / kernel, cls, steps=3)
        assert [h["num_tokens"] for h in fused] == [h["num_tokens"] for h in plain]
        for got, want in zip(fused, plain, strict=True):
            assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)
        assert "mean_token_accuracy" in plain[0] and "mean_token_accuracy" not in fused[0]  # not computed


@pytest.mark.parametrize(
    ("field", "value"),
    [("final_logit_softcapping", 30.0), ("logits_scaling", 8.0), ("logit_scale", 0.0625)],
)
def test_the_fused_loss_is_off_for_heads_that_transform_their_logits(monkeypatch, field, value) -> None:
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_bf16_supported", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: True)
    monkeypatch.setattr(fast, "_compile_layers", lambda model, mode="default", backend="inductor": None)
    model = _tiny(2).to(torch.bfloat16)
    setattr(model.config, field, value)
    plan = fast.tune(model, _Args(), lora=False)
    assert plan.off["fused_linear_cross_entropy"] == f"the head transforms its logits ({field}={value})"
    assert model._odin_flce is False
    biased = _tiny(2).to(torch.bfloat16)
    biased.lm_head.bias = torch.nn.Parameter(torch.zeros(64, dtype=torch.bfloat16))
    assert (
        fast.tune(biased, _Args(), lora=False).off["fused_linear_cross_entropy"]
        == "the output head has a bias"
    )
    plain = _tiny(2).to(torch.bfloat16)
    plan = fast.tune(plain, _Args(), lora=False, loss_kernel="compiled")
    assert "fused_linear_cross_entropy(compiled)" in plan.on and plain._odin_loss_kernel == "compiled"
    with pytest.raises(ValueError, match="loss_kernel='fused': one of liger, compiled"):
        fast.tune(plain, _Args(), lora=False, loss_kernel="fused")


def test_the_runs_own_nan_filter_holds_for_evaluation_and_checkpoints(tmp_path, monkeypatch) -> None:
    """While the device filter stands in for the Trainer's, evaluation still drops a NaN batch loss by the
    run's flag, the checkpoint's training_args.bin and on_train_begin see the run's own flag."""
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class NaNEval(SFTTrainer):
        def prediction_step(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            loss, logits, labels = super().prediction_step(*args, **kwargs)
            self.__dict__["evals"] = self.__dict__.get("evals", 0) + 1
            return (loss * float("nan") if self.evals == 1 else loss), logits, labels

    class Flags(TrainerCallback):
        begin: list[bool] = []

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN202
            self.begin.append(args.logging_nan_inf_filter)

    def run(cls, out):  # noqa: ANN001, ANN202
        from datasets import Dataset

        eval_rows = Dataset.from_dict(
            {"input_ids": [[(5 * i + j) % 60 + 2 for j in range(9)] for i in range(4)]}
        )
        trainer, _ = _sft_run(
            out,
            cls,
            steps=4,
            eval_dataset=eval_rows,
            eval_strategy="steps",
            eval_steps=2,
            per_device_eval_batch_size=2,
            save_strategy="steps",
            save_steps=2,
            callbacks=[Flags()],
        )
        return trainer

    plain = run(NaNEval, tmp_path / "plain")
    fast_cls = fast.trainer_class(NaNEval)
    original = fast_cls.train

    def train(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        self.model._odin_nan_filter = True  # what tune sets on CUDA
        return original(self, *args, **kwargs)

    monkeypatch.setattr(fast_cls, "train", train)
    odin = run(fast_cls, tmp_path / "odin")

    def evals(trainer):  # noqa: ANN001, ANN202
        return [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]

    assert evals(odin) == pytest.approx(evals(plain)) and all(v == v for v in evals(odin))
    saved = torch.load(tmp_path / "odin" / "checkpoint-2" / "training_args.bin", weights_only=False)
    assert saved.logging_nan_inf_filter is True
    assert Flags.begin == [True, True]
    assert odin.args.logging_nan_inf_filter is True


def test_heads_under_a_text_config_or_behind_a_dense_layer_are_not_plain() -> None:
    """Composite configs keep the head's soft-cap under text_config (Gemma 3n); some models' lm_head is
    more than their output embeddings (ModernBertDecoder)."""
    model = _tiny(2)
    assert fast._head_not_plain(model) == ""
    inner = transformers.LlamaConfig(final_logit_softcapping=30.0)
    model.config.get_text_config = lambda *a, **k: inner
    assert fast._head_not_plain(model) == "the head transforms its logits (final_logit_softcapping=30.0)"
    dense = _tiny(2)
    dense.lm_head = torch.nn.Sequential(torch.nn.Linear(32, 32), dense.lm_head)
    dense.get_output_embeddings = lambda: dense.lm_head[1]
    assert fast._head_not_plain(dense) == "the model's lm_head is more than its output embeddings"


def test_a_trainer_with_its_own_loop_keeps_the_trainers_nan_filter() -> None:
    from trl import SFTTrainer

    assert fast._loss_kept_on_device(SFTTrainer) is True

    class OwnLoop(SFTTrainer):
        def _run_epoch(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            running = 0.0  # a local running loss that training_step cannot reach
            if self.args.logging_nan_inf_filter:
                return running
            return running

    if not hasattr(SFTTrainer, "_run_epoch"):
        pytest.skip("this transformers has no _run_epoch")
    assert fast._loss_kept_on_device(OwnLoop) is False


@pytest.mark.parametrize(
    ("lora", "accumulation", "setup", "world", "expected"),
    [
        (False, 1, {}, 1, "reduce-overhead"),  # full fine-tuning in one process: CUDA graphs
        (True, 1, {}, 1, "default"),  # LoRA: measured no gain
        # accumulation: a replay would overwrite the first micro-batch's gradients
        (False, 4, {}, 1, "default"),
        # recomputed layers replay in the backward
        (False, 1, {"gradient_checkpointing": True}, 1, "default"),
        (False, 1, {"checkpoint_layers": 0.5}, 1, "default"),
        (False, 1, {}, 2, "default"),  # DDP: not measured with graphs
        # packed rows: a new length, a new graph, at every batch
        (False, 1, {"packing": True}, 1, "default"),
        (False, 1, {"padding_free": True}, 1, "default"),
        # several GPUs without a launcher: the Trainer's DataParallel runs each replica in a thread
        (False, 1, {"n_gpu": 2}, 1, "default"),
        (False, 1, {"compile_mode": "default"}, 1, "default"),  # the caller's word wins
        (True, 4, {"compile_mode": "reduce-overhead"}, 1, "reduce-overhead"),
    ],
)
def test_cuda_graphs_are_the_default_for_full_fine_tuning_alone(
    monkeypatch, lora, accumulation, setup, world, expected
) -> None:
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "world_size", lambda: world)
    monkeypatch.setattr(fast, "_set_memory_budget", lambda budget: None)
    monkeypatch.setattr(fast, "_checkpoint_layers", lambda model, fraction: 1)
    modes = []
    monkeypatch.setattr(
        fast, "_compile_layers", lambda model, mode="default", backend="inductor": modes.append(mode)
    )
    args = _Args()
    args.gradient_accumulation_steps = accumulation
    levers = dict(setup)
    for flag, plain in (("packing", False), ("padding_free", False), ("n_gpu", 1)):
        setattr(args, flag, levers.pop(flag, plain))
    model = _tiny(2)
    plan = fast.tune(model, args, lora=lora, **levers)
    assert modes == [expected]
    assert ("compile_layers" if expected == "default" else f"compile_layers(mode={expected})") in plan.on
    assert model._odin_cuda_graphs is (expected == "reduce-overhead")  # the trainer marks each micro-batch


def test_an_unknown_compile_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="auto or one of"):
        fast.tune(_tiny(2), _Args(), lora=False, compile_mode="fastest")


def test_no_cuda_graphs_by_default_where_generation_could_not_run_eagerly(monkeypatch) -> None:
    """torch < 2.6 has no compile stance: generation would replay (and record) graphs token by token."""
    monkeypatch.setattr(fast, "_eager_stance", lambda: False)
    assert fast.compile_mode_for("auto", _Args(), lora=False, checkpointing=False) == "default"
    monkeypatch.setattr(fast, "_eager_stance", lambda: True)
    assert fast.compile_mode_for("auto", _Args(), lora=False, checkpointing=False) == "reduce-overhead"


@pytest.mark.parametrize(
    ("accumulation", "backend", "expected"),
    [
        (1, "cudagraphs", ("reduce-overhead", "cudagraphs")),
        (1, "inductor", ("reduce-overhead", "inductor")),
        # accumulation: no graphs may replay, so the graphs-only backend gives way to inductor
        (4, "cudagraphs", ("default", "inductor")),
    ],
)
def test_the_cudagraphs_backend_only_where_graphs_may_replay(
    monkeypatch, accumulation, backend, expected
) -> None:
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "world_size", lambda: 1)  # graphs only on one process
    monkeypatch.setattr(fast, "_eager_stance", lambda: True)  # and only where generation runs eagerly
    calls = []
    monkeypatch.setattr(
        fast,
        "_compile_layers",
        lambda model, mode="default", backend="inductor": calls.append((mode, backend)),
    )
    args = _Args()
    args.gradient_accumulation_steps = accumulation
    model = _tiny(2)
    plan = fast.tune(model, args, lora=False, compile_backend=backend)
    assert calls == [expected]
    assert model._odin_cuda_graphs is (expected[0] == "reduce-overhead")
    if expected[1] == "cudagraphs":
        assert "compile_layers(backend=cudagraphs)" in plan.on
    assert ("compile_backend=cudagraphs" in plan.off) is (backend != expected[1])


def test_the_cudagraphs_backend_compiles_one_static_graph_per_row_length(monkeypatch) -> None:
    """Real dynamo on CPU, the cudagraphs backend replaced by a recorder: with dynamic shapes (dynamo's
    default after a second row length) that backend replayed the first graph with the new rows' inputs
    and stopped the run at its fourth step on text rows; every graph it gets must be static."""
    import torch._dynamo.backends.registry as registry

    seen = []

    def recorder(gm, example_inputs):  # noqa: ANN001, ANN202
        symbolic = [
            n.name
            for n in gm.graph.nodes
            if n.op == "placeholder" and isinstance(n.meta.get("example_value"), torch.SymInt)
        ]
        seen.append(symbolic)
        return gm.forward

    registry._lazy_import()
    monkeypatch.setitem(registry._COMPILER_FNS, "cudagraphs", recorder)
    torch._dynamo.reset()
    model = _tiny(2)
    fast._compile_layers(model, "reduce-overhead", "cudagraphs")
    for length in (8, 12, 16):
        ids = torch.arange(2 * length).reshape(2, length) % 64
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    torch._dynamo.reset()
    assert len(seen) == 3  # one graph per row length, none symbolic
    assert seen == [[], [], []]


def test_an_unknown_compile_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="one of inductor, cudagraphs"):
        fast.tune(_tiny(2), _Args(), lora=False, compile_backend="tvm")


def test_the_cudagraphs_backend_compiles_each_layer_with_it(monkeypatch) -> None:
    """What ``_compile_layers`` asks torch for: the backend by name, and no inductor mode beside it."""
    seen = []
    model = _tiny(2)
    for layer in fast._decoder_layers(model):
        monkeypatch.setattr(layer, "compile", lambda **kw: seen.append(kw))
    fast._compile_layers(model, "reduce-overhead", "cudagraphs")
    fast._compile_layers(model, "reduce-overhead", "inductor")
    assert seen == [{"backend": "cudagraphs", "dynamic": False}] * 2 + [{"mode": "reduce-overhead"}] * 2


def test_compile_workers_are_warmed_only_where_inductor_compiles(monkeypatch) -> None:
    import torch._inductor.async_compile as async_compile

    warmed = []

    def warm_pool() -> None:  # what torch's does, without the processes: the marker the plan reads
        warmed.append(1)
        monkeypatch.setattr(async_compile.AsyncCompile, "_ready_future", object(), raising=False)

    monkeypatch.setattr(async_compile, "maybe_warm_pool", warm_pool)
    monkeypatch.setattr(async_compile.AsyncCompile, "_ready_future", None, raising=False)
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "_compile_layers", lambda model, mode="default", backend="inductor": None)
    plan = fast.tune(_tiny(2), _Args(), lora=False)
    assert "warm_compile_workers" in plan.on and warmed == [1]
    for levers, reason in [
        ({"compile_backend": "cudagraphs"}, "needs compile_layers with inductor"),
        ({"compile_layers": False}, "needs compile_layers with inductor"),
        ({"warm_compile_workers": False}, "disabled"),
    ]:
        plan = fast.tune(_tiny(2), _Args(), lora=False, **levers)
        assert plan.off["warm_compile_workers"] == reason and warmed == [1], levers
        assert fast.warms_compile_workers(_Args(), levers=levers) is False
    assert fast.warms_compile_workers(_Args()) is True
    # where tune would not compile the layers (_untested_setup): no workers started early either
    assert fast.warms_compile_workers(_Args(), quantized=True) is False
    sharded = _Args()
    sharded.fsdp = "full_shard"
    assert fast.warms_compile_workers(sharded) is False


def test_no_compile_workers_are_claimed_where_torch_starts_none(monkeypatch) -> None:
    # torch's own maybe_warm_pool, where it starts nothing (no Triton): odin claims no workers.
    import torch._inductor.async_compile as async_compile

    monkeypatch.setattr(async_compile.AsyncCompile, "_ready_future", None, raising=False)
    monkeypatch.setattr(async_compile, "has_triton_package", lambda: False)  # no pool in the test's process
    assert fast.warm_compile_workers() is False
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "_compile_layers", lambda model, mode="default", backend="inductor": None)
    monkeypatch.setattr(async_compile, "maybe_warm_pool", lambda: None)
    plan = fast.tune(_tiny(2), _Args(), lora=False)
    assert plan.off["warm_compile_workers"] == "torch started no compile workers (one compile thread?)"


@pytest.mark.parametrize(
    ("argv", "levers", "warmed"),
    [
        (["--max_steps", "200"], {}, True),
        (["--max_steps", "10"], {}, False),  # too short for the fast path: nothing compiles
        (["--max_steps", "200", "--odin_fast", "false"], {}, False),
        (["--max_steps", "200", "--engine", "loop"], {}, False),
        (["--max_steps", "200"], {"warm_compile_workers": False}, False),
        (["--max_steps", "200"], {"compile_backend": "cudagraphs"}, False),
        # epochs over the shipped 1,024 train rows, batch 8: 128 steps per epoch
        (["--max_steps", "-1", "--per_device_train_batch_size", "8", "--num_train_epochs", "1"], {}, False),
        (["--max_steps", "-1", "--per_device_train_batch_size", "8", "--num_train_epochs", "2"], {}, True),
    ],
)
def test_the_recipe_warms_the_compile_workers_before_the_model_loads(
    monkeypatch, tmp_path, argv, levers, warmed
) -> None:
    from odin_slm import train

    order: list[str] = []
    monkeypatch.setattr(train.SFTRecipe, "_model", lambda self: order.append("model"))
    monkeypatch.setattr(train.SFTRecipe, "_adapter", lambda self: None)
    monkeypatch.setattr(fast, "warm_compile_workers", lambda: order.append("warm") or True)
    monkeypatch.setattr(fast, "_cuda", lambda: True)  # the choice only: nothing runs on CUDA
    for name, value in levers.items():
        monkeypatch.setitem(fast.DEFAULTS, name, value)
    train.SFTRecipe(["--output_dir", str(tmp_path / "run"), *argv]).setup()
    assert order == (["warm", "model"] if warmed else ["model"])


def test_a_failing_early_warm_does_not_stop_the_run(monkeypatch, tmp_path, caplog) -> None:
    from odin_slm import train

    order: list[str] = []
    monkeypatch.setattr(train.SFTRecipe, "_model", lambda self: order.append("model"))
    monkeypatch.setattr(train.SFTRecipe, "_adapter", lambda self: None)
    monkeypatch.setattr(fast, "_cuda", lambda: True)

    def broken() -> bool:
        raise OSError("no processes left")

    monkeypatch.setattr(fast, "warm_compile_workers", broken)
    train.SFTRecipe(["--output_dir", str(tmp_path / "run"), "--max_steps", "200"]).setup()
    assert order == ["model"]
    assert "could not start the compile workers early: OSError: no processes left" in caplog.text
