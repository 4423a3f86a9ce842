#!/usr/bin/env bash
# async_save="device" where the GPU has room, where the run's own peak leaves none, and where another
# process holds the GPU's memory (scripts/gpu/device_fallback.py); carry .whl-new .bench.
# Output: $OUT/device_fallback.txt
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl-new/*.whl || exit 1
export HF_HUB_OFFLINE=1 PYTHONPATH=/tmp/site:$PWD/src
[ -d /tmp/smollm2-shape ] || python3 scripts/gpu/shape_model.py /tmp/smollm2-shape > /dev/null 2>&1
timeout 300 python3 scripts/gpu/device_fallback.py /tmp/smollm2-shape /tmp/device-fallback \
    > $OUT/device_fallback.log 2>&1
echo "rc=$?"
grep "^== " $OUT/device_fallback.log | tee $OUT/device_fallback.txt
[ -s $OUT/device_fallback.txt ] || tail -20 $OUT/device_fallback.log
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader
