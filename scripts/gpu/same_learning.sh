#!/usr/bin/env bash
# On the device, after the GGUF's parts are joined (scripts/gpu/gguf_parts.sh), in the repo root, carrying
# .slmdev/whl (trl/datasets/gguf wheels), .whl-new (liger-kernel) and .bench/text.jsonl
# (`python benchmarks/same_learning.py prepare`):
#   1. same learning: 200 steps of real text on the real weights, plain TRL (--odin_fast false) and odin's
#      default (no flag), full fine-tuning and LoRA; losses at every step -> $OUT/same_learning.json
#      (the shipped configs' runs, cfg_*, are in it too: their data, their logging every 5 steps)
#   2. the shipped GPU configs end to end (load, exact match before, train, exact match after, save),
#      fast path off and on -> $OUT/configs.json
# RUNS picks a subset, e.g. RUNS="full_plain full_default"; full_cg forces the cudagraphs backend
# (LoRA does not replay CUDA graphs, so it never gets that backend).
set -u
G=$(bash scripts/gpu/gguf_parts.sh) || exit 1
[ -f "$G" ] || { echo "the GGUF is not complete on this machine"; exit 1; }
PIP=(python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site)
"${PIP[@]}" .slmdev/whl/*.whl $(ls .whl-new/liger_kernel-*.whl 2>/dev/null) || exit 1  # liger: bf16 weights only
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p /tmp/sl
TEXT=(--dataset_name .bench/text.jsonl --max_steps 200 --logging_steps 1 --per_device_train_batch_size 8
      --max_length 512 --bf16 true --eval_samples 0 --save_strategy no --seed 42)
LORA=(--use_peft true --lora_r 16 --lora_alpha 32 --lora_dropout 0.0 --lora_target_modules all-linear)
summarise() {  # after every run, so a call stopped at its limit still returns what finished
    python3 benchmarks/same_learning.py collect --out $OUT/same_learning.json $(ls /tmp/sl/*.json)
    python3 benchmarks/same_learning.py compare $OUT/same_learning.json
    python3 - <<'PY' > $OUT/configs.json
import glob, json, os
out = {}
for f in sorted(glob.glob("/tmp/sl/cfg_*.json")):
    m = json.load(open(f))
    out[os.path.basename(f)[:-5]] = {k: m.get(k) for k in (
        "tokens_per_second", "train_seconds", "total_seconds", "peak_gpu_allocated_mib", "global_step",
        "eval_before", "eval_after", "versions")} | {"final_loss": (m.get("loss_curve") or [{}])[-1].get("loss")}
print(json.dumps(out, indent=1))
PY
    python3 -c "
import json
for k, m in json.load(open('$OUT/configs.json')).items():
    print(k, 'tok/s', m['tokens_per_second'], 'train_s', m['train_seconds'], 'total_s', m['total_seconds'],
          'em', (m['eval_after'] or {}).get('correct'), 'mib', m['peak_gpu_allocated_mib'])"
}
run() {
    name=$1; shift; t=$(date +%s)
    rm -rf /tmp/sl/$name  # a name run again replaces its earlier run (the results keep the last one)
    # scripts/gpu/clocked_train.py: odin_slm.train itself, plus the ODIN_LEVERS override of full_cg
    timeout 200 python3 scripts/gpu/clocked_train.py /tmp/sl-$name.steps.json --model_name_or_path "$G" --output_dir /tmp/sl/$name \
        --disable_tqdm true "$@" > /tmp/sl-$name.log 2>&1
    rc=$?; cp /tmp/sl/$name/metrics.json /tmp/sl/$name.json 2>/dev/null
    echo "$name rc=$rc $(( $(date +%s)-t ))s $(grep -a 'Done in' /tmp/sl-$name.log)"
    grep -a "fast levers" /tmp/sl-$name.log | tail -1
    [ $rc = 0 ] || tail -15 /tmp/sl-$name.log
    summarise > /dev/null 2>&1
}
for r in ${RUNS:-full_plain full_default lora_plain lora_default cfg_lora_off cfg_lora_default cfg_full_off cfg_full_default}; do
    case $r in
        full_plain) run $r "${TEXT[@]}" --learning_rate 2e-5 --odin_fast false ;;
        full_default) run $r "${TEXT[@]}" --learning_rate 2e-5 ;;  # no flag: odin's default
        full_cg) ODIN_LEVERS='{"compile_backend": "cudagraphs"}' run $r "${TEXT[@]}" --learning_rate 2e-5 --odin_fast true ;;
        lora_plain) run $r "${TEXT[@]}" "${LORA[@]}" --learning_rate 2e-4 --odin_fast false ;;
        lora_default) run $r "${TEXT[@]}" "${LORA[@]}" --learning_rate 2e-4 ;;
        cfg_lora_off) run $r --config src/odin_slm/configs/gpu-lora.yaml --odin_fast false ;;
        cfg_lora_on) run $r --config src/odin_slm/configs/gpu-lora.yaml --odin_fast true ;;
        cfg_full_off) run $r --config src/odin_slm/configs/gpu-full.yaml --odin_fast false ;;
        cfg_full_on) run $r --config src/odin_slm/configs/gpu-full.yaml --odin_fast true ;;
        cfg_lora_default) run $r --config src/odin_slm/configs/gpu-lora.yaml ;;
        cfg_full_default) run $r --config src/odin_slm/configs/gpu-full.yaml ;;
    esac
done
summarise
tar czf $OUT/sl-logs.tgz -C /tmp $(cd /tmp && ls sl-*.log sl-*.steps.json) 2>/dev/null  # logs and clocks: the saved models are large
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
