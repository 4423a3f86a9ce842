#!/usr/bin/env bash
# The shipped GPU configs end to end (load, exact match before, train, exact match after, save), as shipped,
# with odin's speed levers on (--odin_fast true) and off (false), in alternating order. One call on
# nvidia-h200 carrying .whl-new (or .slmdev/whl, which must hold liger-kernel too) and .bench. The model is a random-init
# SmolLM2-135M shape (scripts/gpu/shape_model.py): the shipped model's compute without its GGUF.
# RUNS: "config:odin_fast[@lever=value,...]" in order, odin_fast true, false or default (no flag: odin decides);
# each run goes through scripts/gpu/clocked_train.py (the same command with a clock on each step, no GPU sync);
# COLD=1 empties the compile caches (inductor's, Triton's and odin's $ODIN_CACHE/compile) before each run:
# every run compiles as a user's first run on a machine does. COLD=container empties inductor's and
# Triton's only: a later run in a new container whose $ODIN_CACHE persists. wall_s is the whole command,
# python start-up and imports included. Logs come back in $OUT/logs.tgz.
set -u
M=/tmp/smollm2-shape
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 ODIN_CACHE=/tmp/cache-gpu
T0=$(date +%s)
mkdir -p /tmp/logs
BUDGET_S=${BUDGET_S:-540}
# .slmdev/whl where it was carried, else .whl-new (trl, datasets, liger-kernel: all the shape model needs);
# not both: pip refuses the same wheel named twice
W=.whl-new; ls .slmdev/whl/*.whl > /dev/null 2>&1 && W=.slmdev/whl
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    $W/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/summary.txt
python3 scripts/gpu/shape_model.py "$M" 2>&1 | tail -1 | tee -a $OUT/summary.txt
for run in ${RUNS:-full:false full:true lora:false lora:true full:true full:false lora:true lora:false}; do
    spec=${run%%@*} levers=; [ "$spec" != "$run" ] && levers=${run#*@}
    cfg=${spec%%:*} fast=${spec##*:} name=$cfg-$fast-$(date +%s)
    # lever overrides after @ (a=b,c=d), a measurement aid: scripts/gpu/clocked_train.py reads ODIN_LEVERS
    export ODIN_LEVERS=$(python3 -c 'import json, sys
kv = [p.split("=", 1) for p in sys.argv[1].split(",") if p]
def value(v):  # JSON where it parses (true, 0, 0.4), else the string (cudagraphs)
    try:
        return json.loads(v)
    except ValueError:
        return v
print(json.dumps({k: value(v) for k, v in kv}))' "$levers")
    if [ $(( $(date +%s) - T0 )) -gt $BUDGET_S ]; then echo "== $run skipped (budget)" | tee -a $OUT/summary.txt; continue; fi
    case ${COLD:-0} in
        1) rm -rf /tmp/torchinductor_$(whoami) ~/.triton/cache $ODIN_CACHE/compile ;;
        container) rm -rf /tmp/torchinductor_$(whoami) ~/.triton/cache ;;
    esac
    t=$(date +%s.%N)
    python3 scripts/gpu/clocked_train.py /tmp/logs/$name.steps.json --config src/odin_slm/configs/gpu-$cfg.yaml --model_name_or_path $M \
        --output_dir /tmp/r/$name --disable_tqdm true $([ "$fast" = default ] || echo --odin_fast $fast) \
        ${EXTRA:-} > /tmp/logs/$name.log 2>&1
    rc=$?
    wall=$(python3 -c "import time; print(round(time.time() - $t, 2))")
    cp /tmp/r/$name/metrics.json /tmp/logs/$name.metrics.json 2>/dev/null
    python3 - /tmp/logs/$name.metrics.json "$run rc=$rc wall_s=$wall" /tmp/logs/$name.steps.json <<'PY' | tee -a $OUT/summary.txt
import json, statistics, sys
try:
    m = json.load(open(sys.argv[1]))
    ev = (m.get("eval_after") or {}).get("seconds")
    print(f"== {sys.argv[2]} train_s={m.get('train_seconds')} total_s={m.get('total_seconds')} tok/s={m.get('tokens_per_second')} "
          f"eval_after_s={ev} peak_mib={m.get('peak_gpu_allocated_mib')} loss={m['loss_curve'][-1]} levers={m.get('fast_levers', {}).get('on') if isinstance(m.get('fast_levers'), dict) else m.get('fast_levers')}")
    c = json.load(open(sys.argv[3]))
    t = c["steps"]
    gaps = [b - a for a, b in zip(t, t[1:])]
    late = gaps[10:] or gaps  # the gaps after step 11 (a run of 11 steps or fewer: all of them)
    steady = sorted(late)[: max(1, len(late) * 9 // 10)]  # the slowest tenth (logs, saves) left out
    print(f"   clock: imports_s={c.get('imports_s', 0):.2f} step1_s={t[0]:.2f} step2_s={t[min(1, len(t) - 1)]:.2f} step10_s={t[min(9, len(t) - 1)]:.2f} "
          f"last_s={t[-1]:.2f} median_step_ms={1000 * statistics.median(late or [0]):.1f} "
          f"steady_ms={1000 * statistics.mean(steady or [0]):.1f} saves={c['saves']} process_s={c.get('process_s')} "
          f"workers_asked_s={c.get('compile_workers_asked_s')} workers_ready_s={c.get('compile_workers_ready_s')}")
    # the set-up before the first step, split: the stack's imports, each set-up step, and the rest
    # (the Trainer's construction and preparation) up to the first step
    ph = c.get("phases", {})
    # a thread's imports may end after the first step: not part of the path to it
    last = max((p["end_s"] for k, p in ph.items() if not k.endswith("_thread")), default=c.get("stack_imports_s", 0))
    parts = " ".join(f"{k}={p['s']:.2f}" for k, p in ph.items())
    print(f"   set-up: stack_imports_s={c.get('stack_imports_s')} {parts} rest_s={c.get('imports_s', 0) - last:.2f}")
    cnt = {**c.get("counters", {}).get("inductor", {}), **c.get("counters", {}).get("aot_autograd", {})}
    hits = {k: v for k, v in cnt.items() if "cache_hit" in k or "cache_miss" in k}
    if hits:
        print(f"   caches: {hits}")
except Exception as exc:
    print(f"== {sys.argv[2]} no metrics ({exc})")
PY
    python3 scripts/gpu/check_checkpoints.py /tmp/r/$name 2>&1 | tail -1 | tee -a $OUT/summary.txt
    rm -rf /tmp/r/$name
done
tar -C /tmp -czf $OUT/logs.tgz logs
