#!/usr/bin/env bash
# Fill ./.whl-new with the modern-stack packages the device image lacks (cp312, --no-deps), and ./.bench with
# the benchmark's tokens. ./.whl (the user's unsloth stack) comes from scripts/gpu/fetch_wheels.sh.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
for d in /.whl-new/ /.bench/ /.odin-src/; do grep -qxF "$d" .git/info/exclude || echo "$d" >> .git/info/exclude; done
PY=${PYTHON:-python3}
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl-new trl==1.16.0 datasets==4.7.0 dill==0.4.0 multiprocess==0.70.18 fsspec==2026.2.0 liger-kernel==0.8.5
# tokens: needs tokenizers + transformers + numpy in $PY
$PY benchmarks/train_throughput.py prepare --out .bench
rm -rf .odin-src && mkdir .odin-src && git archive HEAD src | tar -x -C .odin-src && git rev-parse HEAD > .odin-src/COMMIT
du -ch .whl .whl-new .bench .odin-src | tail -1
