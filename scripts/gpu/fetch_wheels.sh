#!/usr/bin/env bash
# Download the user's stack (cp312, manylinux x86_64, --no-deps) into ./.whl for the GPU proof.
# Wheels are never committed: ./.whl is listed in .git/info/exclude. Run from the repo root.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
PY=${PYTHON:-python3}
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64
      --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64)
PKGS=(
  unsloth==2025.3.3 unsloth_zoo==2025.3.1
  transformers==4.47.1 accelerate==1.12.0 trl==0.17.0 peft==0.15.2
  datasets==3.5.0 dill==0.3.8 multiprocess==0.70.16 fsspec==2024.12.0
  tokenizers==0.21.1 huggingface_hub==0.30.2
  bitsandbytes==0.48.2 xformers==0.0.35 nvidia-cuda-runtime-cu12==12.8.90
)
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLAT[@]}" -d .whl "${PKGS[@]}"

# bitsandbytes ships one CUDA library per toolkit (~60 MB); keep cpu + cuda130 (the device's torch is cu130).
BNB=$(ls .whl/bitsandbytes-0.48.2-*.whl)
# (grep reads the whole listing: with -q, unzip's SIGPIPE fails the pipeline under pipefail)
if unzip -l "$BNB" | grep 'libbitsandbytes_cuda1[12][0-9]\.so' > /dev/null; then
  tmp=$(mktemp -d)
  (cd "$tmp" && unzip -q "$OLDPWD/$BNB")
  find "$tmp/bitsandbytes" -name 'libbitsandbytes_*.so' ! -name libbitsandbytes_cpu.so \
       ! -name libbitsandbytes_cuda130.so -delete
  # Rewrite RECORD without the dropped files so pip accepts the wheel.
  rec=$(ls "$tmp"/bitsandbytes-*.dist-info/RECORD)
  grep -v 'libbitsandbytes_cuda1[12][0-9]\.so' "$rec" | grep -v 'libbitsandbytes_cuda130' > "$rec.new" || true
  grep 'libbitsandbytes_cuda130' "$rec" >> "$rec.new" || true
  mv "$rec.new" "$rec"
  rm "$BNB"
  (cd "$tmp" && zip -q -r "$OLDPWD/$BNB" .)
  rm -rf "$tmp"
fi

# nvidia-cuda-runtime-cu12: only libcudart.so.12 is needed (xformers links it).
ls -la .whl
du -ch .whl/*.whl | tail -1
