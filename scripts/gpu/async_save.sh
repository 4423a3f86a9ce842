#!/usr/bin/env bash
# The async_save lever on one H200 (carry .whl-new .bench). First scripts/gpu/profile_save.py (PROFILE=0
# skips it): the host time of gpu-full's checkpoint save with the lever off, "pinned" and "device". Then
# gpu-full end to end with the default (pinned), device mode and off, interleaved. As in compile_cache.sh,
# odin's compile artifacts are removed once and inductor's caches emptied before every run: the first
# default run compiles, the later ones load its artifact. Each run's last checkpoint is checked against
# final/ (scripts/gpu/check_checkpoints.py). Summary in $OUT/summary.txt, profile in $OUT/profile.txt.
set -u
if [ "${PROFILE:-1}" = 1 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl-new/*.whl || exit 1
    export HF_HUB_OFFLINE=1
    PYTHONPATH=/tmp/site:$PWD/src python3 scripts/gpu/shape_model.py /tmp/smollm2-shape > /dev/null 2>&1
    PYTHONPATH=/tmp/site:$PWD/src python3 scripts/gpu/profile_save.py /tmp/smollm2-shape /tmp/profile-save \
        > $OUT/profile.txt 2> $OUT/profile.err
    grep -E "^== |^   " $OUT/profile.txt
fi
RUNS=${RUNS:-"full:default full:default@async_save=false full:default@async_save=device full:default full:default@async_save=false full:default@async_save=device full:false"} \
    BUDGET_S=${BUDGET_S:-460} bash scripts/gpu/compile_cache.sh > /dev/null
grep -E "^== |checkpoints:" $OUT/summary.txt
