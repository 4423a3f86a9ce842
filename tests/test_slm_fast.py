"""odin_slm.fast on CPU: when the levers are chosen, what each does to the model, and that none changes the math."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from odin_slm import fast  # noqa: E402

BIG, SHIPPED = 8 * 2048, 32 * 128  # the benchmark's step; the shipped GPU configs' step


@pytest.mark.parametrize(
    ("requested", "engine", "cuda", "tokens", "steps", "expected"),
    [
        (None, "trl", True, BIG, 200, True),  # where the levers were measured to pay
        (None, "trl", True, SHIPPED, 200, False),  # host-bound small steps: not earned back
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
    assert plan.off["fused_linear_cross_entropy"] == "needs CUDA and liger-kernel"
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
