"""odin_slm.fuse on CPU: linears that share an input become one matmul, and no loss or gradient changes.

A tiny random Llama (hidden 64, 2 layers, 4 heads, 2 KV heads), each decoder layer compiled as
``fast._compile_layers`` compiles it, with the pass and without: full fine-tuning, and PEFT LoRA on every
projection. The fast tests run inductor's own pre-grad pipeline (where ``fuse.enable`` hooks the pass in)
and then plain autograd, with no code generation; the slow ones compile with inductor itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import peft
import pytest
import torch
import torch._functorch.config as functorch_config
import torch._inductor.config as inductor_config
import torch.nn.functional as F
from torch._dynamo.backends.debugging import aot_eager
from torch._dynamo.utils import counters
from torch._inductor.fx_passes.pre_grad import pre_grad_passes
from transformers import LlamaConfig, LlamaForCausalLM

from odin_slm import fast, fuse

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# The groups each decoder layer's graph gets. A frozen base weight is never fused with a trainable LoRA
# weight, so o_proj and down_proj (one base and one LoRA A linear on their input) stay as they were.
GROUPS = {
    "full": [("gate_proj", "up_proj"), ("q_proj", "k_proj", "v_proj")],
    "lora": [
        ("gate_proj", "up_proj"),
        ("gate_proj.lora_A", "up_proj.lora_A"),
        ("q_proj", "k_proj", "v_proj"),
        ("q_proj.lora_A", "k_proj.lora_A", "v_proj.lora_A"),
    ],
}
IDS = torch.arange(48).reshape(2, 24) % 64

Result = tuple[torch.Tensor, dict[str, torch.Tensor]]


@pytest.fixture
def installed() -> Iterator[None]:
    """The pass installed as ``fast.tune`` installs it, for this test only; no cache skips it."""
    with (
        inductor_config.patch(pre_grad_custom_pass=None, fx_graph_cache=False),
        functorch_config.patch(enable_autograd_cache=False),
    ):
        fuse.enable()
        yield
    torch._dynamo.reset()


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config)
    if kind == "lora":
        lora = peft.LoraConfig(r=8, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, lora)
        for name, param in model.named_parameters():  # B starts at zero: let the adapters count
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.05)
        model.enable_input_require_grads()  # one graph serves both layers (fast's lora_input_grads)
    return model


def _step(model: torch.nn.Module, backend: Any = None) -> Result:
    """One forward and backward, each decoder layer compiled with ``backend`` (None: eager): loss, grads."""
    torch._dynamo.reset()
    if backend is not None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        for layer in fast._decoder_layers(base):
            layer.compile(backend=backend)
    loss = model(input_ids=IDS, labels=IDS, use_cache=False).loss
    loss.backward()
    torch._dynamo.reset()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def _assert_same(fused: Result, plain: Result) -> None:
    (loss, grads), (plain_loss, plain_grads) = fused, plain
    torch.testing.assert_close(loss, plain_loss, rtol=1e-5, atol=0)
    assert grads.keys() == plain_grads.keys() and grads
    for name, grad in plain_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def _fused_groups(graph: torch.fx.Graph) -> list[tuple[str, ...]]:
    """Each ``torch.cat`` of weights that feeds a linear, as the projections' names."""

    def name(weight: torch.fx.Node) -> str:
        proj = re.search(r"[a-z]+_proj", weight.name).group(0)
        return proj + (".lora_A" if "lora_a" in weight.name else "")

    return sorted(
        tuple(name(weight) for weight in node.args[0])
        for node in graph.nodes
        if node.target is torch.cat and any(user.target in fuse._LINEAR for user in node.users)
    )


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_pre_grad_fusion_groups_the_projections_and_changes_no_gradient(kind: str, installed: None) -> None:
    graphs: list[torch.fx.Graph] = []

    def pre_grad_then_autograd(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        gm = pre_grad_passes(gm, example_inputs)  # runs inductor_config.pre_grad_custom_pass
        graphs.append(gm.graph)
        return aot_eager(gm, example_inputs)

    fused = _step(_model(kind), pre_grad_then_autograd)
    assert [_fused_groups(graph) for graph in graphs] == [GROUPS[kind]]  # one graph, both layers
    _assert_same(fused, _step(_model(kind)))


@pytest.mark.slow  # inductor compiles C++ kernels for each variant: 20-40 s on 2 cores
@pytest.mark.parametrize("kind", ["full", "lora"])
def test_inductor_compiled_layers_with_the_fusion_change_no_gradient(kind: str) -> None:
    with (
        inductor_config.patch(fx_graph_cache=False),
        functorch_config.patch(enable_autograd_cache=False),
    ):
        plain = _step(_model(kind), "inductor")
        with inductor_config.patch(pre_grad_custom_pass=None):
            fuse.enable()
            counters.clear()
            fused = _step(_model(kind), "inductor")
            assert counters["inductor"][fuse.COUNTER] == len(GROUPS[kind])
    _assert_same(fused, plain)


def _linears(case: str) -> Callable[..., Any]:
    def fn(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, b1: Any, b2: Any) -> Any:
        a = F.linear(x, w1, b1)
        if case == "view merges the last dimension":
            a = a.view(2, -1)
        if case == "in-place op between":
            x.add_(1)
        if case == "grad mode changes between":
            with torch.no_grad():
                return a, F.linear(x, w2, b2)
        b = F.linear(x, w2, b2)
        if case == "heads view":  # what attention does: split the last dimension into heads
            return a.view(2, 3, 2, -1), b.view(2, 3, 2, -1)
        return a, b

    return fn


@pytest.mark.parametrize(
    ("case", "groups"),
    [
        ("plain", 1),
        ("biases", 1),
        ("heads view", 1),
        ("frozen and trainable", 0),
        ("view merges the last dimension", 0),
        ("in-place op between", 0),
        ("grad mode changes between", 0),
    ],
)
def test_only_linears_a_fusion_cannot_change_are_fused(case: str, groups: int) -> None:
    fired: list[int] = []

    def fuse_then_run(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        fired.append(fuse.fuse_shared_input_linears(gm.graph))
        gm.recompile()
        return gm.forward

    def inputs() -> list[Any]:
        torch.manual_seed(0)
        w1, w2 = torch.randn(8, 4, requires_grad=True), torch.randn(6, 4)
        w2.requires_grad_(case != "frozen and trainable")
        biases = [torch.randn(8, requires_grad=True), torch.randn(6, requires_grad=True)]
        return [torch.randn(2, 3, 4), w1, w2, *(biases if case == "biases" else [None, None])]

    fn = _linears(case)
    torch._dynamo.reset()
    got, want = torch.compile(fn, backend=fuse_then_run)(*inputs()), fn(*inputs())
    torch._dynamo.reset()
    assert fired == [groups]
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


def test_enable_keeps_an_earlier_pass_first_and_is_idempotent() -> None:
    seen: list[torch.fx.Graph] = []
    with inductor_config.patch(pre_grad_custom_pass=seen.append):
        fuse.enable()
        fuse.enable()
        installed = inductor_config.pre_grad_custom_pass
        assert isinstance(installed, fuse.FuseSharedInputLinears) and installed.before == seen.append
        assert installed.uuid() is None  # the earlier pass has no cache key: inductor must not cache
        graph = torch.fx.Graph()
        graph.output(graph.placeholder("x"))
        installed(graph)
        assert seen == [graph]
        fuse.disable()
        assert inductor_config.pre_grad_custom_pass == seen.append
    with inductor_config.patch(pre_grad_custom_pass=None):
        fuse.enable()
        assert inductor_config.pre_grad_custom_pass.uuid()  # alone, inductor may cache its results
        fuse.disable()
        assert inductor_config.pre_grad_custom_pass is None


class _Args:
    bf16 = False
    optim = "adamw_torch"
    gradient_checkpointing = False


def test_the_lever_installs_the_pass_only_with_compiled_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "_cuda", lambda: True)
    monkeypatch.setattr(fast, "_have", lambda module: module == "triton")
    monkeypatch.setattr(fast, "_bf16_supported", lambda: True)
    monkeypatch.setattr(fast, "_compile_layers", lambda model, mode="default", backend="inductor": None)
    with inductor_config.patch(pre_grad_custom_pass=None):
        plan = fast.tune(_model("full"), _Args(), lora=False)
        assert plan.off["fuse_projections"] == "disabled"  # opt-in while it is being measured
        plan = fast.tune(_model("full"), _Args(), lora=False, fuse_projections=True)
        assert "fuse_projections" in plan.on
        assert isinstance(inductor_config.pre_grad_custom_pass, fuse.FuseSharedInputLinears)
        plan = fast.tune(_model("full"), _Args(), lora=False, fuse_projections=True, compile_layers=False)
        assert plan.off["fuse_projections"] == "needs compile_layers"
        assert inductor_config.pre_grad_custom_pass is None  # process-wide: not inherited by a later run
