#!/usr/bin/env bash
# async_save's pinned-memory reservation on one H200 (carry .whl-new .bench): scripts/gpu/profile_save.py
# without and with RESERVE=1 (two fresh processes: the first pinned save's hold against the reservation's
# own time), then gpu-full end to end with the default as in compile_cache.sh (the first run compiles, the
# later ones load its artifact; the step clocks show the first save's hold and the steps around the
# reservation). First scripts/gpu/pinned_cache.py: whether blocks freed by another thread are reused.
# E2E=0: only pinned_cache.py and the profile with RESERVE=1. Profiles in $OUT/profile-{0,1}.txt,
# summary in $OUT/summary.txt.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl-new/*.whl || exit 1
export HF_HUB_OFFLINE=1
PYTHONPATH=/tmp/site:$PWD/src python3 scripts/gpu/shape_model.py /tmp/smollm2-shape > /dev/null 2>&1
PYTHONPATH=/tmp/site:$PWD/src python3 scripts/gpu/pinned_cache.py /tmp/smollm2-shape 2>&1 | grep "^== " | tee $OUT/pinned_cache.txt
[ "${E2E:-1}" = 1 ] || RESERVES=${RESERVES:-1}
for r in ${RESERVES:-0 1}; do
    RESERVE=$r PYTHONPATH=/tmp/site:$PWD/src python3 scripts/gpu/profile_save.py /tmp/smollm2-shape \
        /tmp/profile-save > $OUT/profile-$r.txt 2> $OUT/profile-$r.err
    echo "RESERVE=$r"; grep -E "^== " $OUT/profile-$r.txt
done
[ "${E2E:-1}" = 1 ] || exit 0
RUNS=${RUNS:-"full:default full:default full:default"} BUDGET_S=${BUDGET_S:-200} \
    bash scripts/gpu/compile_cache.sh > /dev/null
grep -E "^== |clock:|checkpoints:" $OUT/summary.txt
