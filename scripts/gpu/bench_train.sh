#!/usr/bin/env bash
# Training-throughput benchmark on the device (one call): plain TRL, unsloth 2025.3.3 healed by odin, odin-tuned.
# Run in the repo root with (device tool: carry [".whl", ".whl-new", ".bench", ".odin-src"]):
#   ./.whl      the user's unsloth stack (scripts/gpu/fetch_wheels.sh)
#   ./.whl-new  trl 1.16.0, datasets 4.7.0, dill 0.4.0, multiprocess 0.70.18, fsspec 2026.2.0, liger-kernel 0.8.5
#               (scripts/gpu/bench_fetch.sh)
#   ./.bench    tokens + tokenizer (python benchmarks/train_throughput.py prepare --out .bench)
#   ./.odin-src a `git archive HEAD src` snapshot (ODIN_SRC=.odin-src/src), or ODIN_SRC=src
# Writes $OUT/train_throughput.json, $OUT/logs.tgz, $OUT/versions.txt.
set -u
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
BUDGET_S=${BUDGET_S:-540}
ODIN_SRC=$(cd "${ODIN_SRC:-src}" && pwd)
mkdir -p "$OUT"
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}  # unsloth patches only with one visible GPU
export PYTHONUNBUFFERED=1 UNSLOTH_DISABLE_STATISTICS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
       TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false HF_DATASETS_DISABLE_PROGRESS_BARS=1 \
       TQDM_DISABLE=1 ODIN_SRC BENCH_WORK=/tmp/odin-bench

PIP=(python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade)
"${PIP[@]}" --target /tmp/site-new .whl-new/*.whl || exit 1
if ls .whl/*.whl > /dev/null 2>&1; then  # the unsloth anchor only; a call without .whl runs the modern stack
    "${PIP[@]}" --target /tmp/site-unsloth $(ls .whl/*.whl | grep -v nvidia_cuda_runtime) || exit 1
    "${PIP[@]}" --target /tmp/cudart12 .whl/nvidia_cuda_runtime_cu12-*.whl || exit 1
fi

export PYTHONPATH=/tmp/site-new:$ODIN_SRC
export UNSLOTH_PYTHONPATH=/tmp/site-unsloth:$ODIN_SRC
export UNSLOTH_LD_LIBRARY_PATH=/tmp/cudart12/nvidia/cuda_runtime/lib:${LD_LIBRARY_PATH:-}
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
  python3 -VV
  echo "odin sources: $ODIN_SRC $(cat "$ODIN_SRC/../COMMIT" 2>/dev/null)"
  for pp in "$PYTHONPATH" "$UNSLOTH_PYTHONPATH"; do
    echo "--- PYTHONPATH=$pp"
    PYTHONPATH=$pp python3 -c '
import importlib.metadata as md
for n in ["torch","triton","transformers","accelerate","trl","peft","datasets","liger_kernel","unsloth",
          "unsloth_zoo","xformers","tokenizers","huggingface_hub","pyarrow","fsspec","numpy"]:
    try: print(f"{n}=={md.version(n)}")
    except md.PackageNotFoundError: print(f"{n}: -")'
  done
} > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt"
python3 benchmarks/train_throughput.py all --out "$OUT" --budget-s "$BUDGET_S" ${BENCH_ONLY:+--only $BENCH_ONLY}
rc=$?
tar czf "$OUT/logs.tgz" -C /tmp/odin-bench logs 2>/dev/null
exit $rc
