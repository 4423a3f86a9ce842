#!/usr/bin/env bash
# 1 GPU vs 2 GPUs (torchrun) on the shipped GPU configs, with TRL's per-step metric gathers
# (ODIN_DEFER_METRICS=0) and with odin's deferred ones (the default). One call on nvidia-h200-x2,
# carrying .slmdev/whl (trl, datasets wheels) and .bench (a byte-level BPE tokenizer).
# The model is a random-init SmolLM2-135M shape (the shipped model's compute, no 98 MB GGUF to carry).
# Like `multi_gpu.sh scale`: no checkpoint saves, 8 exact-match rows (rank 0's alone), so the figure is
# the training steps' (variant "shipped": the configs as they are).
set -u
REPO=$PWD
CFG=$REPO/src/odin_slm/configs
M=/tmp/smollm2-shape
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 ODIN_CACHE=/tmp/cache-gpu
mkdir -p /tmp/r /tmp/logs
T0=$(date +%s)
BUDGET_S=${BUDGET_S:-560}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .slmdev/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$REPO/src
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader | tee $OUT/summary.txt
python3 scripts/gpu/shape_model.py "$M" 2>&1 | tail -2 | tee -a $OUT/summary.txt

run() {  # run NAME DEFER LAUNCHER... : one trainer run, its metrics into /tmp/logs
    local name=$1 defer=$2; shift 2
    if [ $(( $(date +%s) - T0 )) -gt $BUDGET_S ]; then echo "== $name skipped (budget)" | tee -a $OUT/summary.txt; return; fi
    local t; t=$(date +%s)
    rm -rf /tmp/r/$name
    ODIN_DEFER_METRICS=$defer "$@" --model_name_or_path $M --output_dir /tmp/r/$name --disable_tqdm true > /tmp/logs/$name.log 2>&1
    local rc=$?
    cp /tmp/r/$name/metrics.json /tmp/logs/$name.metrics.json 2>/dev/null
    python3 - /tmp/logs/$name.metrics.json "$name rc=$rc $(( $(date +%s) - t ))s" <<'PY' | tee -a $OUT/summary.txt
import json, sys
try:
    m = json.load(open(sys.argv[1]))
    print(f"== {sys.argv[2]} ws={m.get('world_size')} steps={m.get('global_step')} tok/s={m.get('tokens_per_second')} "
          f"train_s={m.get('train_seconds')} loss={m['loss_curve'][-1]} levers={(m.get('fast_levers') or {}).get('on')}")
except Exception as exc:
    print(f"== {sys.argv[2]} no metrics ({exc})")
PY
    [ $rc = 0 ] || tail -5 /tmp/logs/$name.log | tee -a $OUT/summary.txt
}
X="--save_strategy no --eval_samples 8"
# RUNS: "config:gpus:variant" in order. variant: defer (odin's default), pergather (ODIN_DEFER_METRICS=0: TRL's
# per-step metric gathers), ddpsearch (DDP's per-step unused-parameter search, the
# Trainer's own DDP settings), shipped (as shipped: checkpoint saves and 64 exact-match rows included).
# COLD=1 empties the compile caches before every run. A repeat in the other order shows the noise.
for r in ${RUNS:-lora:1:defer lora:2:defer lora:1:pergather lora:2:pergather full:1:defer full:2:defer full:1:pergather full:2:pergather lora:1:shipped lora:2:shipped full:1:shipped full:2:shipped}; do
    IFS=: read -r cfg gpus variant <<< "$r"
    defer=1 extra=$X
    case $variant in
        pergather) defer=0 ;;
        ddpsearch) extra="$X --ddp_find_unused_parameters true" ;;
        shipped) extra= ;;
    esac
    [ "${COLD:-0}" = 1 ] && rm -rf /tmp/torchinductor_$(whoami) ~/.triton/cache
    if [ "$gpus" = 1 ]; then
        run ${cfg}_${variant}_1gpu_$(date +%s) $defer env CUDA_VISIBLE_DEVICES=0 python3 -m odin_slm.train --config $CFG/gpu-$cfg.yaml $extra
    else
        run ${cfg}_${variant}_${gpus}gpu_$(date +%s) $defer torchrun --nproc_per_node $gpus -m odin_slm.train --config $CFG/gpu-$cfg.yaml $extra
    fi
done
tar -C /tmp -czf $OUT/logs.tgz logs
