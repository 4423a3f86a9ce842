#!/usr/bin/env bash
# The compile_cache lever on one H200 (carry .whl-new .bench). odin's compile artifacts are removed once;
# then every run starts with inductor's and Triton's caches empty (COLD=container, as in a new container
# whose $ODIN_CACHE persists): the first default run of each config compiles from scratch and saves its
# artifact, later ones load it. Against plain, and against the lever off (@compile_cache=false: what such
# a run compiled before). Summary in $OUT/summary.txt, logs in $OUT/logs.tgz.
set -u
rm -rf /tmp/cache-gpu/compile  # shipped_default.sh's ODIN_CACHE
COLD=container BUDGET_S=${BUDGET_S:-420} \
    RUNS=${RUNS:-"full:default full:false full:default full:default@compile_cache=false full:false full:default full:default@compile_cache=false full:false"} \
    bash scripts/gpu/shipped_default.sh
