#!/usr/bin/env bash
# GPU proof of the FP8BackendType crash and of odin's fix. Run on the device, in the repo root,
# with ./.whl filled by scripts/gpu/fetch_wheels.sh (device tool: carry [".whl"]).
#
# 8 cases, plus 2 controls (the odin script with ODIN_COMPAT_DISABLE=1; odin imported late,
# after unsloth), run in parallel, each in its own working directory and under a timeout:
#   {16bit, 4bit} x {xformers, no xformers} x {plain, odin}
# "odin" runs a copy of scripts/gpu/user_train.py whose only change is a first line
# `import odin_compat` (odin comes from ./src on PYTHONPATH; it is not pip-installed).
# Logs go to $OUT (or ./gpu-out): summary.txt, versions.txt, logs.tgz.
set -u
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
CASE_TIMEOUT=${CASE_TIMEOUT:-420}
WORK=${WORK:-/tmp/odin-proof}
# odin's sources: ./src by default; ODIN_SRC=.odin-src/src runs a committed snapshot instead
# (made here with `git archive HEAD src | tar -x -C .odin-src`), so others' uncommitted edits
# in the working tree don't leak into the proof.
ODIN_SRC=$(cd "${ODIN_SRC:-src}" && pwd)
mkdir -p "$OUT" "$WORK"
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}  # unsloth rebuilds prepare only with 1 GPU
export PYTHONUNBUFFERED=1 UNSLOTH_DISABLE_STATISTICS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
       TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# Two site folders, the user's stack first on PYTHONPATH so the image's newer packages don't leak in.
# The CUDA 12 runtime (for xformers) goes to its own folder, reached only through LD_LIBRARY_PATH.
PIP=(python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade)
STACK=$(ls .whl/*.whl | grep -v -e nvidia_cuda_runtime -e xformers)
"${PIP[@]}" --target /tmp/site-xf $STACK .whl/xformers-*.whl || exit 1
"${PIP[@]}" --target /tmp/site-noxf $STACK || exit 1
"${PIP[@]}" --target /tmp/cudart12 .whl/nvidia_cuda_runtime_cu12-*.whl || exit 1
CUDART=/tmp/cudart12/nvidia/cuda_runtime/lib

# The "with odin" script: user_train.py with `import odin_compat` as a new first line.
printf 'import odin_compat\n' | cat - scripts/gpu/user_train.py > "$WORK/user_train_odin.py"
# Extra case, not the user's fix: odin imported late, after unsloth has rebuilt `prepare`
# (exercises odin's sweep of already-loaded modules instead of its exec audit hook).
sed '/^from unsloth import FastLanguageModel/a import odin_compat' scripts/gpu/user_train.py > "$WORK/user_train_odin_late.py"

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -VV
  echo "--- odin sources used: $ODIN_SRC $(cat "$ODIN_SRC/../COMMIT" 2>/dev/null)"
  (cd "$ODIN_SRC" && sha1sum odin_compat/*.py odin_compat/repairs/*.py)
  echo "--- diff user_train.py user_train_odin.py"
  diff scripts/gpu/user_train.py "$WORK/user_train_odin.py"
  echo "--- diff user_train.py user_train_odin_late.py"
  diff scripts/gpu/user_train.py "$WORK/user_train_odin_late.py"
  for site in /tmp/site-xf /tmp/site-noxf; do
    echo "--- $site"
    PYTHONPATH=$site:$ODIN_SRC LD_LIBRARY_PATH=$CUDART:${LD_LIBRARY_PATH:-} python3 - <<'EOF'
import importlib.metadata as md
for n in ["torch", "triton", "unsloth", "unsloth_zoo", "transformers", "accelerate", "trl", "peft",
          "datasets", "tokenizers", "huggingface_hub", "bitsandbytes", "xformers", "dill",
          "multiprocess", "fsspec", "numpy"]:
    try:
        print(f"{n}=={md.version(n)}")
    except md.PackageNotFoundError:
        print(f"{n}: not installed")
import odin_compat, accelerate
print("odin_compat", odin_compat.__version__, odin_compat.__file__)
print("accelerate from", accelerate.__file__)
EOF
  done
} > "$OUT/versions.txt" 2>&1

run_case() {  # name quant xf odin|odin-disabled
  local name=$1 quant=$2 xf=$3 odin=$4 dir=$WORK/$1 site ld script disable=0
  mkdir -p "$dir"
  if [ "$xf" = xf ]; then site=/tmp/site-xf; ld=$CUDART:${LD_LIBRARY_PATH:-}; else site=/tmp/site-noxf; ld=${LD_LIBRARY_PATH:-}; fi
  case $odin in
    odin) script=$WORK/user_train_odin.py ;;
    odin-disabled) script=$WORK/user_train_odin.py; disable=1 ;;  # control: same script, odin switched off
    odin-late) script=$WORK/user_train_odin_late.py ;;
    *) script=scripts/gpu/user_train.py ;;
  esac
  cp "$script" "$dir/user_train.py"  # run from its own dir: cwd (= script dir) is on sys.path
  local t0=$SECONDS
  (cd "$dir" && ODIN_COMPAT_DISABLE=$disable PYTHONPATH=$site:$ODIN_SRC LD_LIBRARY_PATH=$ld LOAD_IN_4BIT=$([ "$quant" = 4bit ] && echo 1 || echo 0) \
     timeout -k 10 "$CASE_TIMEOUT" python3 user_train.py) > "$WORK/$name.log" 2>&1
  echo "$? $((SECONDS - t0))" > "$WORK/$name.rc"
}

CASES=()
for quant in 16bit 4bit; do for xf in xf noxf; do for odin in plain odin; do
  CASES+=("$quant-$xf-$odin"); run_case "$quant-$xf-$odin" $quant $xf $odin &
done; done; done
CASES+=(16bit-xf-odin-disabled); run_case 16bit-xf-odin-disabled 16bit xf odin-disabled &
CASES+=(16bit-xf-odin-late); run_case 16bit-xf-odin-late 16bit xf odin-late &
wait

{
  for c in "${CASES[@]}"; do
    read -r rc secs < "$WORK/$c.rc"
    echo "== $c: exit=$rc (${secs}s)"
    grep -E '^RESULT|^ODIN_|^[A-Za-z_.]*(Error|Exception):' "$WORK/$c.log" | tail -5
    grep -E '^  File "<string>"' "$WORK/$c.log" | tail -2
  done
} > "$OUT/summary.txt"
(cd "$WORK" && tar czf "$OUT/logs.tgz" ./*.log ./*.rc ./user_train_odin*.py)
cat "$OUT/versions.txt" "$OUT/summary.txt"
