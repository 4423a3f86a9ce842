"""Does odin's default fast path learn the same as plain TRL? Loss curves of real runs, compared step by step.

The GPU runs are ``python -m odin_slm.train`` on the real SmolLM2-135M-Instruct weights (the built-in GGUF)
with real text, 200 steps, once with ``--odin_fast false`` (TRL's ``SFTTrainer`` as it is) and once with
odin's default, for full fine-tuning and for LoRA (``scripts/gpu/same_learning.sh`` runs them; the results
are committed in ``benchmarks/results/same_learning.json``). Subcommands:

    prepare --out .bench/text.jsonl      # here: text rows that every CPython ships (pydoc topics, docstrings)
    collect --out R.json M1.json ...     # on the card: each run's metrics.json -> one results file
    compare R.json                       # largest relative loss difference per pair, at every logged step
    plot R.json --out docs/same-learning.png

The text is the same as the throughput benchmark's (``train_throughput._local_texts``): nothing from a hub.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOLERANCE = 0.01  # the goal: within 1% relative at every logged step
PAIRS = [
    ("full_plain", "full_default"),
    ("lora_plain", "lora_default"),
    # the shipped GPU configs on their own data (the date task), as shipped
    ("cfg_full_off", "cfg_full_default"),
    ("cfg_lora_off", "cfg_lora_default"),
]
# compared with plain TRL, not plotted: the compiled layers built by the cudagraphs backend
BACKEND_PAIRS = [("full_plain", "full_cg")]
TITLES = {
    "full_plain": "full fine-tuning, docs text",
    "lora_plain": "LoRA (r16, all linear), docs text",
    "cfg_full_off": "gpu-full.yaml, date task",
    "cfg_lora_off": "gpu-lora.yaml, date task",
}


def prepare(out: Path, chars: int = 1500) -> int:
    """Cut the local text into rows of about ``chars`` characters, on paragraph boundaries."""
    sys.path.insert(0, str(HERE))
    from train_throughput import _local_texts

    rows: list[str] = []
    for text in _local_texts():
        piece = ""
        for para in text.split("\n\n"):
            piece = f"{piece}\n\n{para}" if piece else para
            if len(piece) >= chars:
                rows.append(piece)
                piece = ""
        if len(piece) > 200:
            rows.append(piece)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"text": row}) + "\n")
    print(f"{len(rows)} rows -> {out}")
    return len(rows)


def collect(out: Path, metrics: list[Path]) -> None:
    runs = {}
    for path in metrics:
        m = json.loads(path.read_text())
        runs[path.stem] = {
            "losses": m.get("loss_curve"),
            "tokens_per_second": m.get("tokens_per_second"),
            "train_seconds": m.get("train_seconds"),
            "fast": m.get("fast_levers", m.get("fast")),  # the levers the run had on (None: plain path)
            "versions": m.get("versions"),
        }
    out.write_text(json.dumps({"runs": runs}, indent=1))


def _curve(run: dict[str, Any]) -> list[tuple[int, float]]:
    return [(int(e["step"]), float(e["loss"])) for e in run.get("losses") or [] if "loss" in e]


def compare(results: dict[str, Any]) -> dict[str, Any]:
    """For each (plain, default) pair: the largest and mean relative difference over the common steps."""
    out = {}
    runs = results["runs"]
    for plain, default in PAIRS + BACKEND_PAIRS:
        if plain not in runs or default not in runs:
            continue
        a, b = dict(_curve(runs[plain])), dict(_curve(runs[default]))
        steps = sorted(set(a) & set(b))
        rel = [abs(b[s] - a[s]) / abs(a[s]) for s in steps if a[s]]
        worst = max(range(len(rel)), key=rel.__getitem__) if rel else None
        out[f"{plain} vs {default}"] = {
            "steps": len(steps),
            "max_rel": max(rel) if rel else None,
            "mean_rel": sum(rel) / len(rel) if rel else None,
            "worst_step": steps[worst] if worst is not None else None,
            "within_1pct": bool(rel) and max(rel) <= TOLERANCE,
            "first_last": [a[steps[0]], b[steps[0]], a[steps[-1]], b[steps[-1]]] if steps else None,
        }
    return out


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    pairs = [(a, b) for a, b in PAIRS if a in runs and b in runs and _curve(runs[a]) and _curve(runs[b])]
    if not pairs:
        raise SystemExit("no complete (plain, default) pair in the results: nothing to plot")
    cols = min(2, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4 * rows), squeeze=False)
    for ax, (plain, default) in zip(axes.flat, pairs, strict=False):
        for name, style in ((plain, "-"), (default, "--")):
            steps, losses = zip(*_curve(results["runs"][name]), strict=True)
            label = "plain TRL (--odin_fast false)" if name == plain else "odin's default"
            ax.plot(steps, losses, style, label=label)
        if min(loss for _, loss in _curve(results["runs"][plain])) < 1e-2:
            ax.set_yscale(
                "log"
            )  # a task learned to ~1e-5: the steps after the first few show only on a log scale
        ax.set_title(TITLES.get(plain, plain))
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend()
    fig.suptitle("SmolLM2-135M-Instruct, 200 steps, one H200")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, default=HERE.parent / ".bench" / "text.jsonl")
    p = sub.add_parser("collect")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("metrics", type=Path, nargs="+")
    p = sub.add_parser("compare")
    p.add_argument("results", type=Path)
    p = sub.add_parser("plot")
    p.add_argument("results", type=Path)
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "same-learning.png")
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        prepare(a.out)
    elif a.cmd == "collect":
        collect(a.out, a.metrics)
    elif a.cmd == "compare":
        print(json.dumps(compare(json.loads(a.results.read_text())), indent=1))
    elif a.cmd == "plot":
        plot(json.loads(a.results.read_text()), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
