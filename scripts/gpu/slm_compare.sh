#!/usr/bin/env bash
# Side by side on one card: the gpu-lora config with this tree's trainer and with an older one,
# interleaved (new, old, new, old), to tell a code change from a slower machine.
# After `bash scripts/gpu/slm_train.sh stage` on the same warm machine; carry [.slmdev/b, .odin-old]
# where .odin-old/src is `git archive <old commit> src` (git-ignored through .git/info/exclude).
set -u
G=/tmp/g/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f $G ] || cat /tmp/g/part.aa .slmdev/b/part.ab > $G
CONFIG=${CONFIG:-gpu-lora.yaml}
for i in 1 2; do
    for which in new old; do
        src=$PWD/src; [ $which = old ] && src=$PWD/.odin-old/src
        out=/tmp/cmp/$which-$i; rm -rf $out
        # each tree with its own copy of the config (their keys differ between releases)
        PYTHONPATH=/tmp/site:$src PYTHONUNBUFFERED=1 ODIN_CACHE=/tmp/cache-$which python3 -m odin_slm.train \
            --model_name_or_path $G --config $src/odin_slm/configs/$CONFIG --output_dir $out --disable_tqdm true --odin_fast false \
            > /tmp/cmp-$which-$i.log 2>&1
        echo "$which run $i rc=$? $(grep -a 'Done in' /tmp/cmp-$which-$i.log)"
        cp $out/metrics.json $OUT/$which-$i.json 2>/dev/null
    done
done
