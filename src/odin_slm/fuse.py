"""Fuse linears that read the same input into one matmul, inside ``torch.compile``'d code.

Why: in a Llama-style decoder layer ``q_proj``, ``k_proj`` and ``v_proj`` read one tensor (the attention
norm's output) and ``gate_proj`` and ``up_proj`` another; under PEFT LoRA (``lora_dropout=0``) each adapter's
A matrix reads that same tensor too. Each linear is its own GEMM, three with its backward. One linear over
the concatenated weights, its output split afterwards, does the same arithmetic in fewer, larger GEMMs:
fewer kernel launches on steps bound by host work, better-shaped matmuls on small models.

torch's own ``pre_grad_fusion_options={"batch_linear_lhs": {}}`` does this for 2-D inputs only (a decoder
layer's are 3-D: batch, sequence, hidden) and would also put a frozen base weight and a trainable LoRA
weight in one group. This pass runs where inductor runs custom pre-grad passes
(``torch._inductor.config.pre_grad_custom_pass``): on each compiled graph, in torch IR, before autograd
is traced, so the backward of a fused linear is fused too. It groups linears only where that changes no
number and no gradient:

- same input node, same grad mode / autocast region, and no in-place op in between;
- weights (and biases, all or none) that are graph inputs or attributes: parameters;
- all weights alike in dtype, device, input width and ``requires_grad``: a frozen weight is never
  concatenated with a trainable one, which would make autograd compute the frozen weight's gradient;
- outputs that no user mutates or reinterprets through a view that a slice of the fused output could not
  serve (``view`` is checked: splitting the last dimension, as attention's heads do, is fine).

Use :func:`enable` (idempotent; a pass someone else installed keeps running, first).
"""

from __future__ import annotations

import hashlib
import logging
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.fx
from torch._inductor import config as inductor_config
from torch._inductor.custom_graph_pass import CustomGraphPass

log = logging.getLogger("odin_slm.fuse")

_LINEAR = (torch._C._nn.linear, torch.nn.functional.linear)
# Users that would reinterpret a linear's output memory; a slice of a wider output is not contiguous.
_LAYOUT_USERS = {"view_as", "as_strided", "unflatten", "unfold"}
_PROVENANCE = ("nn_module_stack", "stack_trace", "source_fn_stack")  # meta kept from each fused linear
COUNTER = "odin_fused_linear_groups"  # key in torch._dynamo.utils.counters["inductor"]


def _value(node: Any) -> Any:
    """The fake tensor (or other value) dynamo recorded for a node; None where there is none."""
    if not isinstance(node, torch.fx.Node):
        return None
    return node.meta.get("val", node.meta.get("example_value"))


def _linear_args(node: torch.fx.Node) -> tuple[Any, Any, Any] | None:
    if node.op != "call_function" or node.target not in _LINEAR:
        return None
    names = ("input", "weight", "bias")
    args = [node.args[i] if i < len(node.args) else node.kwargs.get(names[i]) for i in range(3)]
    return args[0], args[1], args[2]


def _target_name(node: torch.fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")


def _mutates(node: torch.fx.Node) -> bool:
    """An in-place op: ``add_``, ``operator.iadd``, ``out=``."""
    name = _target_name(node)
    return (
        (name.endswith("_") and not name.endswith("__"))
        or (getattr(node.target, "__module__", None) == "_operator" and name.startswith("i"))
        or node.kwargs.get("out") is not None
    )


def _is_barrier(node: torch.fx.Node) -> bool:
    """An in-place op, or a call that records no value (grad mode, autocast enter/exit): a group's members
    must not straddle one."""
    if node.op not in ("call_function", "call_method", "call_module"):
        return False
    return _mutates(node) or _value(node) is None


def _slice_serves(user: torch.fx.Node, width: int) -> bool:
    """Whether ``user`` works the same on a slice ``[..., a:a+width]`` of a wider output."""
    name = _target_name(user)
    if name in _LAYOUT_USERS or _mutates(user):
        return False
    if name != "view":
        return True
    # A view may regroup the leading dimensions and split the last one, never merge the last with others.
    shape = getattr(_value(user), "shape", None)
    if shape is None or any(isinstance(a, torch.dtype) for a in user.args[1:]):
        return False
    covered = 1
    for size in reversed(shape):
        if not isinstance(size, int) or covered >= width:
            break
        covered *= size
    return covered == width


def _param(node: Any) -> Any:
    """The fake value of a parameter-like node (graph input or attribute), else None."""
    if isinstance(node, torch.fx.Node) and node.op in ("placeholder", "get_attr"):
        value = _value(node)
        if isinstance(value, torch.Tensor) and value.dim() in (1, 2):
            return value
    return None


def _group_key(node: torch.fx.Node, region: int) -> tuple[Any, ...] | None:
    parts = _linear_args(node)
    if parts is None or len(node.users) == 0:
        return None
    x, weight, bias = parts
    w = _param(weight)
    if not isinstance(x, torch.fx.Node) or w is None or w.dim() != 2:
        return None
    if not all(isinstance(s, int) for s in w.shape):
        return None
    b = None
    if bias is not None:
        b = _param(bias)
        if b is None or b.dim() != 1 or b.requires_grad != w.requires_grad:
            return None
    if not all(_slice_serves(user, int(w.shape[0])) for user in node.users):
        return None
    return (x, region, w.requires_grad, w.dtype, w.device, int(w.shape[1]), b is not None)


def _fake(fn: Any, *values: Any) -> Any:
    """The op run on the members' fake values, for the new node's metadata (None where unknown)."""
    if any(v is None for v in values):
        return None
    try:
        return fn(*values)
    except Exception:  # metadata only: inductor re-traces the graph anyway
        return None


def _fuse(graph: torch.fx.Graph, members: Sequence[torch.fx.Node]) -> None:
    first = members[0]
    parts = [_linear_args(node) for node in members]
    x = parts[0][0]
    weights = [p[1] for p in parts]
    biases = [p[2] for p in parts] if parts[0][2] is not None else []
    widths = [int(_value(w).shape[0]) for w in weights]
    for node in (*weights, *biases):  # attributes read later in the graph: fetch them before the fusion
        if node.op == "get_attr" and _precedes(first, node):
            first.prepend(node)
    with graph.inserting_before(first):
        cat_w = graph.call_function(torch.cat, (weights,), {"dim": 0})
        cat_w.meta["example_value"] = _fake(lambda *ws: torch.cat(ws, 0), *map(_value, weights))
        args: tuple[Any, ...] = (x, cat_w)
        if biases:
            cat_b = graph.call_function(torch.cat, (biases,), {"dim": 0})
            cat_b.meta["example_value"] = _fake(lambda *bs: torch.cat(bs, 0), *map(_value, biases))
            args = (x, cat_w, cat_b)
        fused = graph.call_function(torch._C._nn.linear, args)
        fused.meta["example_value"] = _fake(torch._C._nn.linear, *map(_value, args))
        split = graph.call_function(torch.split, (fused, widths), {"dim": -1})
        split.meta["example_value"] = _fake(lambda t: torch.split(t, widths, -1), _value(fused))
        for i, node in enumerate(members):
            piece = graph.call_function(operator.getitem, (split, i))
            piece.meta.update({k: v for k, v in node.meta.items() if k in _PROVENANCE})
            piece.meta["example_value"] = _fake(operator.getitem, split.meta["example_value"], i)
            node.replace_all_uses_with(piece)
    for node in members:
        graph.erase_node(node)


def _precedes(a: torch.fx.Node, b: torch.fx.Node) -> bool:
    """Whether node ``a`` comes before node ``b`` in their graph."""
    node = a.next
    while node.op != "root":
        if node is b:
            return True
        node = node.next
    return False


def fuse_shared_input_linears(graph: torch.fx.Graph) -> int:
    """Rewrite each group of linears that share an input into one linear over ``torch.cat`` of the
    weights followed by ``torch.split`` of its output; returns how many groups were fused."""
    groups: dict[tuple[Any, ...], list[torch.fx.Node]] = {}
    region = 0
    for node in graph.nodes:
        if _is_barrier(node):
            region += 1
        key = _group_key(node, region)
        if key is not None:
            groups.setdefault(key, []).append(node)
    fused = 0
    for members in groups.values():
        if len(members) > 1:
            _fuse(graph, members)
            fused += 1
    if fused:
        graph.lint()
        log.debug("fused %d groups of linears that share an input", fused)
    return fused


_SOURCE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _passes(installed: Any) -> tuple[Any, ...]:
    if installed is None:
        return ()
    return tuple(installed) if isinstance(installed, (list, tuple)) else (installed,)


class FuseSharedInputLinears(CustomGraphPass):
    """The pre-grad pass: runs the pass that was installed before it (``before``), then the fusion."""

    def __init__(self, before: Any = None) -> None:
        self.before = before

    def __call__(self, graph: torch.fx.Graph) -> None:
        for other in _passes(self.before):
            other(graph)
        fused = fuse_shared_input_linears(graph)
        if fused:
            from torch._dynamo.utils import counters

            counters["inductor"][COUNTER] += fused

    def uuid(self) -> Any:
        """Inductor's cache key for the pass: this file's text and the earlier pass's key. None where that
        pass has no key: torch 2.13 then runs the passes before its cache lookup instead of keying on them."""
        others = [p.uuid() if isinstance(p, CustomGraphPass) else None for p in _passes(self.before)]
        return None if None in others else (_SOURCE, *others)


def _ours(installed: Any) -> FuseSharedInputLinears | None:
    return next((p for p in _passes(installed) if isinstance(p, FuseSharedInputLinears)), None)


def enable() -> None:
    """Install the fusion for every later inductor compile in this process; a no-op where it is in."""
    installed = inductor_config.pre_grad_custom_pass
    if _ours(installed) is None:
        inductor_config.pre_grad_custom_pass = FuseSharedInputLinears(before=installed)


def disable() -> None:
    """Remove the fusion again, leaving the pass that was installed before it."""
    installed = inductor_config.pre_grad_custom_pass
    ours = _ours(installed)
    if ours is None:
        return
    if ours is installed:
        inductor_config.pre_grad_custom_pass = ours.before
    else:  # a list someone built around ours: drop ours from it
        kept = [p for p in installed if p is not ours]
        inductor_config.pre_grad_custom_pass = type(installed)(kept) if kept else None
