#!/usr/bin/env bash
# The async_save lever on one H200 (carry .whl-new .bench): gpu-full with the default (checkpoints written in
# the background), with the lever off (@async_save=false), and plain, interleaved. As in compile_cache.sh,
# odin's compile artifacts are removed once and inductor's caches emptied before every run: the first
# default run compiles, the later ones load its artifact. Each run's last checkpoint is checked against
# final/ (scripts/gpu/check_checkpoints.py). Summary in $OUT/summary.txt, logs in $OUT/logs.tgz.
set -u
RUNS=${RUNS:-"full:default full:default@async_save=false full:false full:default full:default@async_save=false full:false full:default full:default@async_save=false"} \
    BUDGET_S=${BUDGET_S:-460} bash scripts/gpu/compile_cache.sh
