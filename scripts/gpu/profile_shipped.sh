#!/usr/bin/env bash
# Profile the shipped GPU configs' training steps (scripts/gpu/profile_train.py) on a random-init model
# in SmolLM2-135M's shape. One call on nvidia-h200, carrying .slmdev/whl and .bench.
# RUNS: "config:odin_fast" pairs, e.g. "full:false lora:false full:true".
set -u
REPO=$PWD
M=/tmp/smollm2-shape
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 ODIN_CACHE=/tmp/cache-gpu
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .slmdev/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$REPO/src
python3 scripts/gpu/shape_model.py "$M" 2>&1 | tail -1 | tee $OUT/summary.txt
for run in ${RUNS:-full:false lora:false}; do
    cfg=${run%%:*} fast=${run##*:}
    python3 scripts/gpu/profile_train.py $OUT/profile-$cfg-$fast.json --config src/odin_slm/configs/gpu-$cfg.yaml \
        --model_name_or_path $M --output_dir /tmp/r/$cfg-$fast --disable_tqdm true --save_strategy no \
        --eval_samples 0 --max_steps 80 --odin_fast $fast ${EXTRA:-} > $OUT/$cfg-$fast.log 2>&1
    echo "== $cfg odin_fast=$fast rc=$? $(tail -1 $OUT/$cfg-$fast.log)" | tee -a $OUT/summary.txt
done
