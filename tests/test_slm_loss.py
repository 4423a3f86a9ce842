"""odin_slm.loss: the chunked linear cross-entropy against torch's own logits + cross_entropy."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from odin_slm import loss as odin_loss  # noqa: E402


def _case(n: int = 37, h: int = 16, v: int = 50, dtype=torch.float32, seed: int = 0):  # noqa: ANN001, ANN202
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g).to(dtype).requires_grad_()
    weight = (torch.randn(v, h, generator=g) / h**0.5).to(dtype).requires_grad_()
    target = torch.randint(0, v, (n,), generator=g)
    target[::5] = -100  # prompt and padding tokens carry no label
    return hidden, weight, target


def _reference(hidden, weight, target):  # noqa: ANN001, ANN202
    logits = (hidden @ weight.t()).float()
    return F.cross_entropy(logits, target, ignore_index=-100, reduction="sum")


@pytest.mark.parametrize("rows", [1, 8, 37, 64])
def test_loss_and_gradients_match_torch_in_fp32(rows: int) -> None:
    hidden, weight, target = _case()
    ref_h, ref_w = hidden.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    expected = _reference(ref_h, ref_w, target)
    (expected * 0.25).backward()

    got = odin_loss.linear_cross_entropy(hidden, weight, target, rows=rows, compiled=False)
    (got * 0.25).backward()  # the upstream gradient (1 / label count in the trainer) scales both grads

    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hidden.grad, ref_h.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weight.grad, ref_w.grad, rtol=1e-5, atol=1e-6)


def test_ignored_rows_get_no_gradient_and_no_loss() -> None:
    hidden, weight, target = _case()
    target[:] = -100
    got = odin_loss.linear_cross_entropy(hidden, weight, target, rows=8, compiled=False)
    got.backward()
    assert float(got.detach()) == 0.0
    assert torch.count_nonzero(hidden.grad) == 0
    assert torch.count_nonzero(weight.grad) == 0


def test_bf16_is_as_close_to_exact_as_torch() -> None:
    """bf16 weights: odin's loss and gradients are no further from an fp64 computation than torch's own
    bf16 logits + cross_entropy (odin accumulates the weight gradient in fp32, torch in bf16)."""
    hidden, weight, target = _case(n=64, h=32, v=300, dtype=torch.bfloat16)
    exact_h, exact_w = hidden.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    exact = _reference(exact_h, exact_w, target)
    exact.backward()
    ref_h, ref_w = hidden.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    _reference(ref_h, ref_w, target).backward()
    got = odin_loss.linear_cross_entropy(hidden, weight, target, rows=16, compiled=False)
    got.backward()

    assert got.dtype == torch.float32
    assert hidden.grad.dtype == weight.grad.dtype == torch.bfloat16
    assert abs(float(got.detach()) - float(exact.detach())) <= 1e-3 * abs(float(exact.detach()))
    for mine, torchs, true in (
        (hidden.grad, ref_h.grad, exact_h.grad),
        (weight.grad, ref_w.grad, exact_w.grad),
    ):
        err_odin = (mine.double() - true).norm() / true.norm()
        err_torch = (torchs.double() - true).norm() / true.norm()
        assert 0 < err_odin <= 1.01 * err_torch, (float(err_odin), float(err_torch))


def test_frozen_head_gets_no_gradient() -> None:
    """LoRA: the output head is frozen, so only the hidden states' gradient is computed."""
    hidden, weight, target = _case()
    weight.requires_grad_(False)
    odin_loss.linear_cross_entropy(hidden, weight, target, rows=8, compiled=False).backward()
    assert weight.grad is None
    assert hidden.grad is not None and torch.count_nonzero(hidden.grad) > 0


@pytest.mark.parametrize(
    ("vocab", "expected"),
    [(128256, 1024), (49152, 2048), (32000, 4096), (10**9, 1)],
)
def test_chunk_rows_fit_the_memory_budget(vocab: int, expected: int) -> None:
    rows = odin_loss.chunk_rows(vocab)
    assert rows == expected
    assert rows & (rows - 1) == 0
    assert rows == 1 or rows * vocab * 2 <= odin_loss.CHUNK_BYTES


def test_compiled_kernel_matches_eager() -> None:
    """The compiled softmax is the same function: same loss and gradients, including a shorter last chunk."""
    pytest.importorskip("torch._inductor")
    hidden, weight, target = _case(n=40, v=64)
    eager_h, eager_w = hidden.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    expected = odin_loss.linear_cross_entropy(eager_h, eager_w, target, rows=16, compiled=False)
    expected.backward()
    try:
        got = odin_loss.linear_cross_entropy(hidden, weight, target, rows=16, compiled=True)
    except Exception as exc:  # no C++ compiler for inductor's CPU backend on this machine
        pytest.skip(f"torch.compile unavailable on CPU here: {exc!r}")
    got.backward()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hidden.grad, eager_h.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weight.grad, eager_w.grad, rtol=1e-5, atol=1e-6)


def test_without_grad_mode_no_gradient_is_computed(monkeypatch) -> None:
    """Evaluation (no_grad): the loss alone, without the head-sized fp32 gradient buffer of full FT."""
    hidden, weight, target = _case()
    expected = _reference(hidden.detach(), weight.detach(), target)
    monkeypatch.setattr(
        odin_loss, "_mm_acc", lambda *a: pytest.fail("weight gradient computed under no_grad")
    )
    with torch.no_grad():
        got = odin_loss.linear_cross_entropy(hidden, weight, target, rows=8, compiled=False)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_shapes_that_do_not_match_are_refused() -> None:
    hidden, weight, target = _case()
    with pytest.raises(ValueError, match="target"):
        odin_loss.linear_cross_entropy(hidden, weight, target[:-1], compiled=False)
    with pytest.raises(ValueError, match="weight"):
        odin_loss.linear_cross_entropy(hidden, weight[:, :-1], target, compiled=False)


def test_the_upstream_factor_is_applied_in_fp32() -> None:
    """The trainer divides by the label-token count: that factor is not rounded to bf16 first."""
    hidden, weight, target = _case(n=64, h=32, v=300, dtype=torch.bfloat16)
    weight.requires_grad_(False)
    (odin_loss.linear_cross_entropy(hidden, weight, target, rows=16, compiled=False) / 3001).backward()
    scaled = hidden.grad.clone()
    hidden.grad = None
    odin_loss.linear_cross_entropy(hidden, weight, target, rows=16, compiled=False).backward()
    torch.testing.assert_close(scaled, (hidden.grad.float() / 3001).to(torch.bfloat16), rtol=0, atol=0)


def test_a_second_derivative_is_refused_not_wrong() -> None:
    hidden, weight, target = _case()
    got = odin_loss.linear_cross_entropy(hidden, weight, target, rows=8, compiled=False)
    (grad,) = torch.autograd.grad(got, hidden, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|twice|does not require grad"):
        grad.sum().backward()
