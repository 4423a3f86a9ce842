#!/usr/bin/env bash
# Device run: odin_slm.train --engine unsloth on the user's old stack (unsloth 2025.3.3,
# transformers 4.47.1, accelerate 1.12.0, trl 0.17.0), one GPU, a tiny local Llama, text rows.
# Wheels: scripts/gpu/fetch_wheels.sh (into .whl, carried). Writes logs and metrics to $OUT.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
REPO=$PWD
export PYTHONPATH=/tmp/site:$REPO/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1
export LD_LIBRARY_PATH=/tmp/site/nvidia/cuda_runtime/lib:${LD_LIBRARY_PATH:-}
mkdir -p /tmp/w && cd /tmp/w
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/card.txt
python3 -c "
import sys, json; sys.path.insert(0, '$REPO/scripts/gpu')
from user_train import build_model, TEXTS
build_model('/tmp/tiny')
with open('/tmp/text.jsonl', 'w') as f:
    for t in TEXTS: f.write(json.dumps({'text': t}) + '\n')
" > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
for odin in 1 0; do
  rm -rf /tmp/w/unsloth_compiled_cache
  ODIN_COMPAT_DISABLE=$([ $odin = 1 ] && echo 0 || echo 1) timeout 400 python3 -m odin_slm.train --engine unsloth \
    --model_name_or_path /tmp/tiny --dataset_name /tmp/text.jsonl --use_peft true --max_steps 5 --max_length 128 \
    --per_device_train_batch_size 4 --eval_samples 0 --output_dir /tmp/out$odin --disable_tqdm true \
    > $OUT/unsloth_engine_odin$odin.log 2>&1
  echo "odin=$odin rc=$?"; grep -aE "Done in|Error|error:" $OUT/unsloth_engine_odin$odin.log | tail -4
  cp /tmp/out$odin/metrics.json $OUT/unsloth_engine_odin$odin.json 2>/dev/null
done
