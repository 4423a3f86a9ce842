"""The objective metric: exact match of greedy generations against the reference answers."""

from __future__ import annotations

import time
from typing import Any

from odin_slm.data import CHAT_FORMATS, Row, reference, split_prompt
from odin_slm.fast import eager


def exact_match(
    model: Any,
    tokenizer: Any,
    rows: list[Row],
    fmt: str,
    max_new_tokens: int = 16,
    batch_size: int = 32,
    unsloth: bool = False,
) -> dict[str, Any] | None:
    """Greedy-decode each eval prompt; score stripped output == stripped reference. None for text data.

    ``unsloth``: the model was loaded by unsloth, which refuses ``generate()`` outside its inference mode.
    """
    import torch

    if not rows or fmt == "text":
        return None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    fast = None
    if unsloth:
        from unsloth import FastLanguageModel as fast

        fast.for_inference(model)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right edge
    hits, samples, start = 0, [], time.perf_counter()
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            prompts = [split_prompt(r.data, fmt, tokenizer)[0] for r in chunk]
            enc = tokenizer(
                prompts, return_tensors="pt", padding=True, add_special_tokens=fmt not in CHAT_FORMATS
            )
            enc = {k: v.to(device) for k, v in enc.items()}
            # Compiled decoder layers (odin_slm.fast) run eager here: generation must not recompile them.
            with torch.no_grad(), eager():
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=_stop_ids(model, tokenizer),
                )
            for row, seq in zip(chunk, out, strict=True):
                pred = tokenizer.decode(seq[enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
                ref = (reference(row.data, fmt) or "").strip()
                hits += pred == ref
                if len(samples) < 3:
                    samples.append({"prediction": pred, "reference": ref})
    finally:
        tokenizer.padding_side = side
        if fast is not None and was_training:
            fast.for_training(model)
        model.train(was_training)
    return {
        "exact_match": hits / len(rows),
        "correct": hits,
        "n": len(rows),
        "seconds": round(time.perf_counter() - start, 2),
        "samples": samples,
    }


def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """Stop at the tokenizer's eos and the model's generation eos (chat models end turns there)."""
    ids = {tokenizer.eos_token_id}
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen if isinstance(gen, list) else [gen])
    return sorted(i for i in ids if isinstance(i, int))
