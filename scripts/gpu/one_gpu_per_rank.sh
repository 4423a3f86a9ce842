#!/usr/bin/env bash
# torchrun --no-python bash one_gpu_per_rank.sh CMD...: each rank sees only its own GPU (as device 0).
export CUDA_VISIBLE_DEVICES=$LOCAL_RANK LOCAL_RANK=0  # transformers then uses cuda:0, the only one it sees
exec "$@"
