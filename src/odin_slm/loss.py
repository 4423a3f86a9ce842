"""Cross-entropy of a linear head without the ``(tokens, vocab)`` logits: chunked, compiled, no host sync.

``linear_cross_entropy(hidden, weight, target)`` returns ``sum(cross_entropy(hidden @ weight.T, target))``
over the tokens whose target is not -100, and computes its gradients in the forward pass, chunk by chunk,
so that only one chunk's logits exist at a time (what Liger's fused linear cross-entropy does too).

It differs from Liger's in what made Liger's loss a gap in the GPU timeline of a LoRA step
(docs/benchmarks.md): Liger counts the label tokens with ``.item()`` (the host waits for the whole forward
pass) and cuts the tokens into chunks of about ``hidden size`` rows (32 chunks for a Llama-3.2-1B shape at
4 x 2048 tokens, 64 for SmolLM2-135M at 8 x 2048), each a round of kernel launches. Here the chunks are
sized by memory (``CHUNK_BYTES`` of bf16 logits: 1024 and 2048 rows for those shapes), the softmax and its
gradient of a chunk are one ``torch.compile``'d function (the two matmuls stay cuBLAS calls), and nothing
waits for the GPU.

Numerics follow Liger's: logits in the weights' dtype from the matmul, softmax in fp32, the logits'
gradient in the weights' dtype, a weight gradient (full fine-tuning) accumulated in fp32.
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100
# Bytes of one chunk's logits (its gradient takes as much again): 256 MiB is 1024 rows of a 128k vocabulary.
CHUNK_BYTES = 256 * 2**20
MAX_CHUNK = 4096

_COMPILED: dict[str, Any] = {}


def chunk_rows(vocab: int, itemsize: int = 2, budget: int = CHUNK_BYTES) -> int:
    """Rows per chunk: the largest power of two whose logits fit ``budget`` bytes (at least 1, at most 4096)."""
    rows = max(1, budget // max(1, vocab * itemsize))
    return min(MAX_CHUNK, 1 << (rows.bit_length() - 1))


def _softmax_grad(logits: Any, target: Any) -> tuple[Any, Any]:
    """(summed loss, d loss / d logits) of one chunk: fp32 softmax, the gradient in the logits' dtype."""
    import torch

    x = logits.float()
    lse = torch.logsumexp(x, dim=-1)
    valid = target != IGNORE_INDEX
    picked = target.clamp(min=0)
    loss = torch.where(valid, lse - x.gather(1, picked[:, None]).squeeze(1), 0.0).sum()
    onehot = torch.arange(x.size(1), device=x.device)[None, :] == picked[:, None]
    grad = torch.exp(x - lse[:, None]) - onehot.to(x.dtype)
    grad = torch.where(valid[:, None], grad, 0.0).to(logits.dtype)
    return loss, grad


def _kernel(compiled: bool) -> Any:
    if not compiled:
        return _softmax_grad
    if "softmax_grad" not in _COMPILED:
        import torch

        # dynamic=None: the full chunks share one static graph; the last, shorter chunk's size changes
        # with the batch, and dynamo makes that graph dynamic at its second size (two compiles in all).
        _COMPILED["softmax_grad"] = torch.compile(_softmax_grad, fullgraph=True)
    return _COMPILED["softmax_grad"]


def _mm_acc(acc: Any, a: Any, b: Any) -> None:
    """``acc += a @ b`` with fp32 ``acc`` and bf16/fp16 ``a``, ``b``, without an fp32 copy of either."""
    import torch

    if acc.is_cuda and a.dtype != torch.float32:
        try:
            torch.addmm(acc, a, b, out_dtype=torch.float32, out=acc)
            return
        except (TypeError, RuntimeError):  # torch < 2.8 has no out_dtype
            pass
    acc += a.float() @ b.float()  # rounding each chunk's product to bf16 would lose what fp32 keeps


def _linear_ce_forward(
    hidden: Any, weight: Any, target: Any, rows: int, compiled: bool, need_h: bool, need_w: bool
) -> tuple[Any, Any, Any]:
    import torch

    kernel = _kernel(compiled)
    grad_h = torch.empty_like(hidden) if need_h else None
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    h_all, w = hidden.detach(), weight.detach()
    for start in range(0, hidden.size(0), rows):
        h = h_all[start : start + rows]
        loss, grad = kernel(h @ w.t(), target[start : start + rows])
        total += loss
        if grad_h is not None:
            torch.mm(grad, w, out=grad_h[start : start + rows])
        if grad_w is not None:
            _mm_acc(grad_w, grad.t(), h)
    return total, grad_h, grad_w


def _function() -> type:
    import torch
    from torch.autograd.function import once_differentiable

    class LinearCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, target: Any, rows: int, compiled: bool) -> Any:
            total, grad_h, grad_w = _linear_ce_forward(
                hidden, weight, target, rows, compiled, hidden.requires_grad, weight.requires_grad
            )
            ctx.save_for_backward(grad_h, grad_w)
            ctx.dtypes = hidden.dtype, weight.dtype
            return total

        @staticmethod
        @once_differentiable  # the gradients were computed in the forward pass: no graph to differentiate
        def backward(ctx: Any, grad_out: Any) -> tuple[Any, ...]:
            grad_h, grad_w = ctx.saved_tensors
            # the upstream factor (1 / label tokens) applied in fp32, not rounded to bf16 first
            dh = (grad_h.float() * grad_out).to(ctx.dtypes[0]) if grad_h is not None else None
            dw = (grad_w * grad_out).to(ctx.dtypes[1]) if grad_w is not None else None
            return dh, dw, None, None, None

    return LinearCrossEntropy


def linear_cross_entropy(
    hidden: Any, weight: Any, target: Any, *, rows: int | None = None, compiled: bool = True
) -> Any:
    """Summed cross-entropy of ``hidden @ weight.T`` (``(N, H)`` by ``(V, H)``) against ``target`` ``(N,)``.

    Targets of -100 count for nothing; other targets must lie in ``[0, V)`` (not checked: that would make
    the host wait for the GPU). ``rows`` per chunk defaults to :func:`chunk_rows`; ``compiled`` runs the
    per-chunk softmax through ``torch.compile`` (False: the same code, eager).
    """
    import torch

    if hidden.dim() != 2 or target.shape != hidden.shape[:1] or weight.size(-1) != hidden.size(-1):
        raise ValueError(
            f"hidden (N, H), weight (V, H), target (N,) expected; got {tuple(hidden.shape)}, "
            f"{tuple(weight.shape)}, {tuple(target.shape)}"
        )
    rows = int(rows or chunk_rows(weight.size(0), weight.element_size()))
    if not torch.is_grad_enabled():  # evaluation: no gradient buffers (an fp32 copy of the head for full FT)
        return _linear_ce_forward(hidden, weight, target, rows, bool(compiled), False, False)[0]
    if "function" not in _COMPILED:
        _COMPILED["function"] = _function()
    return _COMPILED["function"].apply(hidden, weight, target, rows, bool(compiled))
