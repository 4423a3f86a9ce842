#!/usr/bin/env bash
# Device run (nvidia-h100-x2 / nvidia-h200-x2, carry .whl from scripts/gpu/fetch_wheels.sh): what the
# unsloth engine does under torchrun on the user's old stack (unsloth 2025.3.3, transformers 4.47.1,
# accelerate 1.12.0, trl 0.17.0), odin on and off, with a tiny local Llama (the GGUF does not fit
# one call's carry beside the wheels) and the shipped date task, so exact match is scored too:
#   1 GPU; 2 ranks that each see both GPUs; 2 ranks that each see only their own GPU.
# ONLY="name ..." runs just those.
set -u
REPO=$PWD
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site_old .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site_old:$REPO/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1
export LD_LIBRARY_PATH=/tmp/site_old/nvidia/cuda_runtime/lib:${LD_LIBRARY_PATH:-}
mkdir -p /tmp/w /tmp/logs && cd /tmp/w
python3 -c "
import sys; sys.path.insert(0, '$REPO/scripts/gpu')
from user_train import build_model
build_model('/tmp/tiny')
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained('/tmp/tiny')
tok.chat_template = (\"{% for m in messages %}<|begin_of_text|>{{ m['role'] }}\n{{ m['content'] }}<|end_of_text|>\n{% endfor %}\"
                     \"{% if add_generation_prompt %}<|begin_of_text|>assistant\n{% endif %}\")
tok.save_pretrained('/tmp/tiny')
" > /tmp/logs/build.log 2>&1 || { tail -30 /tmp/logs/build.log; exit 1; }
A="-m odin_slm.train --engine unsloth --model_name_or_path /tmp/tiny --max_steps 10 --max_length 128 --per_device_train_batch_size 8 --eval_samples 8 --save_strategy no --disable_tqdm true"
run() {
    local name=$1 odin=$2; shift 2
    [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $name "* ]] || return 0
    rm -rf /tmp/w/unsloth_compiled_cache
    ODIN_COMPAT_DISABLE=$((1 - odin)) timeout 300 "$@" $A --output_dir /tmp/r/$name > /tmp/logs/$name.log 2>&1
    echo "== $name rc=$?" | tee -a $OUT/summary.txt
    grep -aE "Rank [0-9]+ of|Rank [0-9]+: trained|Done in|Exact match|multi GPU|Error|error:|line [0-9]+, in prepare" /tmp/logs/$name.log \
        | sed 's/^.*odin_slm: //' | sort | uniq | head -12 | tee -a $OUT/summary.txt
}
run one_gpu_odin1 1 env CUDA_VISIBLE_DEVICES=0 python3
run one_gpu_odin0 0 env CUDA_VISIBLE_DEVICES=0 python3
for odin in 1 0; do run two_gpus_odin$odin $odin torchrun --nproc_per_node 2; done
for odin in 1 0; do run gpu_per_rank_odin$odin $odin torchrun --nproc_per_node 2 --no-python bash $REPO/scripts/gpu/one_gpu_per_rank.sh python3; done
tar -C /tmp -czf $OUT/unsloth-logs.tgz logs
