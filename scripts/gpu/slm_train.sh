#!/usr/bin/env bash
# GPU runs of odin_slm.train on the device machine (docs/train-gpu.md), in two calls on one warm machine,
# because the GGUF (98 MB) is over one call's 64 MiB carry: it travels split in .slmdev/a and .slmdev/b
# (git-ignored through .git/info/exclude), made here with
#   split -b 50000000 SmolLM2-135M-Instruct.Q4_1.gguf part.  (part.aa -> .slmdev/a, part.ab -> .slmdev/b)
# and trl/datasets/gguf wheels in .slmdev/whl.
#   call 1 (carry .slmdev/a .slmdev/whl):  bash scripts/gpu/slm_train.sh stage
#   call 2 (carry .slmdev/b), at once:     bash scripts/gpu/slm_train.sh train
# `train` runs gpu-lora and gpu-full with --odin_fast true and false side by side on the same card.
set -u
G=/tmp/g/SmolLM2-135M-Instruct.Q4_1.gguf
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
case "${1:-train}" in
stage)
    mkdir -p /tmp/g && cp .slmdev/a/part.aa /tmp/g/ || exit 1
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .slmdev/whl/*.whl || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "
import importlib.util as u, torch, transformers, trl, peft, accelerate
print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)
print('triton', u.find_spec('triton') is not None, 'liger_kernel', u.find_spec('liger_kernel') is not None)
"
    ;;
train)
    [ -f /tmp/g/part.aa ] || { echo "no /tmp/g/part.aa: run 'stage' first on this warm machine"; exit 1; }
    cat /tmp/g/part.aa .slmdev/b/part.ab > $G && md5sum $G
    mkdir -p /tmp/r
    run() {
        name=$1; shift; t=$(date +%s)
        ODIN_CACHE=/tmp/cache-gpu python3 -m odin_slm.train --model_name_or_path $G --output_dir /tmp/r/$name \
            --disable_tqdm true "$@" > /tmp/r-$name.log 2>&1
        rc=$?; cp /tmp/r/$name/metrics.json $OUT/$name.json 2>/dev/null
        echo "$name rc=$rc $(( $(date +%s)-t ))s $(grep -a 'Done in' /tmp/r-$name.log)"
        grep -a "fast levers" /tmp/r-$name.log
        [ $rc = 0 ] || tail -25 /tmp/r-$name.log
    }
    # The first run also fills the tokenization cache, so each pair starts with the plain run.
    # RUNS picks a subset (default: all four), e.g. RUNS="lora_plain full_plain" for the defaults only.
    for r in ${RUNS:-lora_plain lora_fast full_plain full_fast}; do
        case $r in
            lora_plain) run lora_plain --config src/odin_slm/configs/gpu-lora.yaml --odin_fast false ;;
            lora_fast) run lora_fast --config src/odin_slm/configs/gpu-lora.yaml --odin_fast true ;;
            full_plain) run full_plain --config src/odin_slm/configs/gpu-full.yaml --odin_fast false ;;
            full_fast) run full_fast --config src/odin_slm/configs/gpu-full.yaml --odin_fast true ;;
        esac
    done
    cat /tmp/r-*.log | grep -ai "liger\|triton\|compile\|fast" | sort | uniq -c | head -20 > $OUT/fast_notes.txt
    python3 -c "
import json, glob
for f in sorted(glob.glob('$OUT/*.json')):
    m = json.load(open(f))
    print(f.split('/')[-1], m['global_step'], 'em', m['eval_before']['correct'], '->', m['eval_after']['correct'], '/', m['eval_after']['n'],
          'tok/s', m['tokens_per_second'], 'train_s', m['train_seconds'], 'total_s', m['total_seconds'],
          'gpu_mib', m.get('peak_gpu_allocated_mib'), 'final_loss', m['loss_curve'][-1], m['versions'])
"
    ;;
esac
