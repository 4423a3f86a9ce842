#!/usr/bin/env bash
# QLoRA on a GPU: odin_slm.train --load_in_4bit true --use_peft true, on the device machine, from the repo root.
# Not yet run on a GPU: this script is how it is to be proven.
#
# The image's torch (CUDA) is used; the wheels it lacks travel in ${WHEELS:-.whl} (git-ignored through
# .git/info/exclude; device tool: carry [".whl"]): at least bitsandbytes, plus trl/peft/datasets when the
# image has none, e.g. made here with
#   pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_24_x86_64 -d .whl bitsandbytes trl peft datasets
# No model download: a tiny random Llama (hidden 256, 2 layers) and a byte-level tokenizer are built on the
# spot (tests/_hf_cache.py), and the bundled date task trains for 30 steps.
# Checks, each printed as OK/FAIL: the model odin loads has 4-bit (bitsandbytes Linear4bit) layers and
# trainable LoRA weights only; the run exits 0 with 30 steps, a finite loss and final/adapter_model.safetensors.
# Logs and metrics.json go to $OUT (or ./gpu-out).
set -u
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
WHEELS=${WHEELS:-.whl}
WORK=${WORK:-/tmp/odin-qlora}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH=/tmp/site-qlora:$ROOT/src:$ROOT/tests PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
       TOKENIZERS_PARALLELISM=false CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
if ls "$WHEELS"/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site-qlora "$WHEELS"/*.whl || exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

python3 - "$WORK/model" <<'PY' 2>&1 | tee "$OUT/qlora-load.log"
import sys

import odin_compat  # noqa: F401  (first, as in the trainer)
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from _hf_cache import tiny_tokenizer
from odin_slm.config import parse_args
from odin_slm.engines import get_engine

folder = sys.argv[1]
tok = tiny_tokenizer()
config = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                     eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
torch.manual_seed(0)
LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
tok.save_pretrained(folder)

# The trainer's own load and LoRA, as odin_slm.train runs them.
argv = ["--model_name_or_path", folder, "--load_in_4bit", "true", "--use_peft", "true", "--output_dir", "/tmp/x"]
script, model_args, args, _ = parse_args(argv)
engine = get_engine("trl")
model, _, _ = engine.load(model_args, args)
n4 = sum(type(m).__name__ == "Linear4bit" for m in model.modules())
model = engine.add_lora(model, model_args, args)
trainable = [n for n, p in model.named_parameters() if p.requires_grad]
print("Linear4bit layers:", n4, "trainable tensors:", len(trainable), "all LoRA:", all("lora_" in n for n in trainable))
print("OK load" if n4 > 0 and trainable and all("lora_" in n for n in trainable) else "FAIL load")
PY

python3 -m odin_slm.train --model_name_or_path "$WORK/model" --output_dir "$WORK/run" --overwrite_output_dir \
    --load_in_4bit true --use_peft true --lora_r 8 --max_steps 30 --per_device_train_batch_size 8 \
    --learning_rate 1e-3 --max_length 64 --eval_samples 8 --disable_tqdm true > "$OUT/qlora-train.log" 2>&1
rc=$?
cp "$WORK/run/metrics.json" "$OUT/metrics.json" 2>/dev/null
python3 - "$WORK/run" "$rc" <<'PY' | tee "$OUT/summary.txt"
import json, math, sys
from pathlib import Path

run, rc = Path(sys.argv[1]), int(sys.argv[2])
try:
    m = json.loads((run / "metrics.json").read_text())
except OSError:
    print(f"FAIL train: exit {rc}, no metrics.json (see qlora-train.log)")
    sys.exit(1)
loss = m["loss_curve"][-1]["loss"] if m["loss_curve"] else float("nan")
ok = rc == 0 and m["global_step"] == 30 and math.isfinite(loss) and (run / "final" / "adapter_model.safetensors").is_file()
print(("OK" if ok else "FAIL") + f" train: exit {rc}, steps {m['global_step']}, loss {m['loss_curve'][0]['loss']:.3f} -> {loss:.3f},",
      f"peak GPU {m.get('peak_gpu_allocated_mib')} MiB, versions {m['versions']}")
PY
[ $rc = 0 ] || tail -30 "$OUT/qlora-train.log"
