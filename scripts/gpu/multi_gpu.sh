#!/usr/bin/env bash
# The 2-GPU proof (docs/multi-gpu.md), on nvidia-h100-x2 / nvidia-h200-x2, in three calls on one
# warm machine: the GGUF (98 MB) and the two wheel sets are over one call's 64 MiB carry
# (see scripts/gpu/slm_train.sh for how .slmdev/a, .slmdev/b and .slmdev/whl are made;
# scripts/gpu/fetch_wheels.sh makes .whl, the user's old stack).
# The old stack's wheels travel in two halves too: .slmdev/old1 (tokenizers, xformers, bitsandbytes,
# nvidia_cuda_runtime) and .slmdev/old2 (the rest of .whl).
#   call 1 (carry .slmdev/a .slmdev/whl .slmdev/old1):  bash scripts/gpu/multi_gpu.sh stage
#   call 2 (carry .slmdev/b .slmdev/old2):  bash scripts/gpu/multi_gpu.sh new    (or: scale)
#   call 3 (no carry):                      bash scripts/gpu/multi_gpu.sh old
# `new`: the shipped GPU configs on 1 GPU and on 2 (torchrun), then accelerate launch with the shipped
# DDP and FSDP configs, on the current stack. `scale`: 1 vs 2 GPUs without checkpoint saves, at the
# shipped batch and at 4x the work per step. `old`: the user's old stack (unsloth 2025.3.3,
# transformers 4.47.1, accelerate 1.12.0, trl 0.17.0) under torchrun, odin on and off.
set -u
G=/tmp/g/SmolLM2-135M-Instruct.Q4_1.gguf
REPO=$PWD
CFG=$REPO/src/odin_slm/configs
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 ODIN_CACHE=/tmp/cache-gpu UNSLOTH_DISABLE_STATISTICS=1
mkdir -p /tmp/r /tmp/logs

# run NAME LAUNCHER... -- ARGS: one trainer run; its log and metrics land in /tmp/logs, a line in $OUT/summary.txt.
run() {
    local name=$1; shift
    local t; t=$(date +%s)
    rm -rf /tmp/r/$name
    "$@" --model_name_or_path $G --output_dir /tmp/r/$name --disable_tqdm true > /tmp/logs/$name.log 2>&1
    local rc=$?
    cp /tmp/r/$name/metrics.json /tmp/logs/$name.metrics.json 2>/dev/null
    {
        echo "== $name rc=$rc $(( $(date +%s) - t ))s"
        grep -aE "Rank [0-9]+ of|Rank [0-9]+: trained|Done in|Engine |multi GPU|Error|error:" /tmp/logs/$name.log | sed 's/^.*odin_slm: //' | sort | uniq | head -12
    } | tee -a $OUT/summary.txt
}

pack() {  # everything back in two files (the tool returns at most 8)
    tar -C /tmp -czf $OUT/$1-logs.tgz logs
    python3 - "$1" <<'EOF'
import glob, json, os, sys
rows = {}
for f in sorted(glob.glob("/tmp/logs/*.metrics.json")):
    m = json.load(open(f))
    rows[os.path.basename(f).split(".")[0]] = {k: m.get(k) for k in (
        "engine", "method", "world_size", "global_step", "train_tokens", "tokens_per_second", "train_seconds",
        "total_seconds", "eval_before", "eval_after", "peak_gpu_allocated_mib", "versions")} | {"final_loss": m["loss_curve"][-1]}
json.dump(rows, open(os.environ["OUT"] + f"/{sys.argv[1]}-metrics.json", "w"), indent=1)
for k, r in rows.items():
    print(f"{k:28s} ws={r['world_size']} steps={r['global_step']} tok/s={r['tokens_per_second']} train_s={r['train_seconds']} "
          f"em {r['eval_before'] and r['eval_before']['correct']}->{r['eval_after'] and r['eval_after']['correct']} loss={r['final_loss']}")
EOF
}

case "${1:-}" in
stage)
    mkdir -p /tmp/g && cp .slmdev/a/part.aa /tmp/g/ || exit 1
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .slmdev/whl/*.whl || exit 1
    mkdir -p /tmp/whl_old && cp .slmdev/old1/*.whl .slmdev/whl/gguf-*.whl /tmp/whl_old/ 2>/dev/null
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader | tee $OUT/cards.txt
    nvidia-smi topo -m >> $OUT/cards.txt
    ;;
new|scale)
    [ -f /tmp/g/part.aa ] || { echo "no /tmp/g/part.aa: run 'stage' first on this warm machine"; exit 1; }
    cat /tmp/g/part.aa .slmdev/b/part.ab > $G && md5sum $G
    cp .slmdev/old2/*.whl /tmp/whl_old/ 2>/dev/null
    export PYTHONPATH=/tmp/site:$REPO/src
    python3 -c "import torch, transformers, trl, peft, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, 'gpus', torch.cuda.device_count())" | tee -a $OUT/summary.txt
    if [ $1 = scale ]; then
        # Checkpoint saves and the exact-match scoring are rank 0's alone: leave them out of a scaling figure.
        X="--save_strategy no --eval_samples 8"
        for shape in "lora $CFG/gpu-lora.yaml 32 200" "lora $CFG/gpu-lora.yaml 128 100" "full $CFG/gpu-full.yaml 128 100"; do
            set -- $shape
            run s_$1_bs$3_1gpu env CUDA_VISIBLE_DEVICES=0 python3 -m odin_slm.train --config $2 --per_device_train_batch_size $3 --max_steps $4 $X
            run s_$1_bs$3_2gpu torchrun --nproc_per_node 2 -m odin_slm.train --config $2 --per_device_train_batch_size $3 --max_steps $4 $X
        done
        pack scale | tee -a $OUT/summary.txt
        exit 0
    fi
    # One GPU first (it also converts the GGUF into the cache), then the same config on two.
    run lora_1gpu env CUDA_VISIBLE_DEVICES=0 python3 -m odin_slm.train --config $CFG/gpu-lora.yaml
    run lora_2gpu torchrun --nproc_per_node 2 -m odin_slm.train --config $CFG/gpu-lora.yaml
    run full_1gpu env CUDA_VISIBLE_DEVICES=0 python3 -m odin_slm.train --config $CFG/gpu-full.yaml
    run full_2gpu torchrun --nproc_per_node 2 -m odin_slm.train --config $CFG/gpu-full.yaml
    run accel_ddp_lora accelerate launch --config_file $CFG/accelerate-ddp.yaml -m odin_slm.train --config $CFG/gpu-lora.yaml --max_steps 50
    run accel_fsdp_full accelerate launch --config_file $CFG/accelerate-fsdp.yaml -m odin_slm.train --config $CFG/gpu-full.yaml --max_steps 50
    pack new | tee -a $OUT/summary.txt
    ;;
old)
    [ -f $G ] || { echo "no $G: run 'stage' and 'new' (or 'scale') first on this warm machine"; exit 1; }
    rm -rf /tmp/logs/* && mkdir -p /tmp/site_old
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site_old /tmp/whl_old/*.whl || exit 1
    export PYTHONPATH=/tmp/site_old:$REPO/src
    export LD_LIBRARY_PATH=/tmp/site_old/nvidia/cuda_runtime/lib:${LD_LIBRARY_PATH:-}
    cd /tmp && mkdir -p w && cd w  # unsloth writes unsloth_compiled_cache/ into the working directory
    python3 -c "import torch, transformers, trl, peft, accelerate, unsloth; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, 'unsloth', unsloth.__version__)" 2>&1 | tail -1 | tee -a $OUT/summary.txt
    S="--max_steps 50"
    # auto picks trl under a launcher; unsloth is not imported.
    run old_lora_2gpu torchrun --nproc_per_node 2 -m odin_slm.train --config $CFG/gpu-lora.yaml $S
    run old_lora_1gpu env CUDA_VISIBLE_DEVICES=0 python3 -m odin_slm.train --config $CFG/gpu-lora.yaml --engine trl $S
    # unsloth asked for by name, both GPUs visible to each rank: its single-GPU prepare patch is off.
    for odin in 1 0; do
        run old_unsloth_2gpu_odin$odin env ODIN_COMPAT_DISABLE=$((1 - odin)) torchrun --nproc_per_node 2 -m odin_slm.train --config $CFG/gpu-lora.yaml --engine unsloth --max_steps 20
    done
    # One GPU visible per rank (a common way to get unsloth past its GPU count): its single-GPU patch path is on.
    for odin in 1 0; do
        run old_unsloth_rankgpu_odin$odin env ODIN_COMPAT_DISABLE=$((1 - odin)) torchrun --nproc_per_node 2 --no-python bash $REPO/scripts/gpu/one_gpu_per_rank.sh python3 -m odin_slm.train --config $CFG/gpu-lora.yaml --engine unsloth --max_steps 20
    done
    pack old | tee -a $OUT/summary.txt
    ;;
*)
    echo "usage: $0 stage|new|old"; exit 2 ;;
esac
