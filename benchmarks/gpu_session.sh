#!/usr/bin/env bash
# One GPU session, in the order that makes its numbers trustworthy, each step with its own time limit:
#   1. benchmarks/gpu_check.py   can this machine's timings be trusted (fp32 is fp32, peak, sync, compile)
#   2. benchmarks/run_suite.py   every model, inference and training, bf16, channels_last, batch 256
#   3. reszoo bench              resnet56 with CUDA graphs, resnet50 compiled (the launch-bound and
#                                the compute-bound case), through the CLI a user would run
#   4. reszoo train              a short real-CUDA training run (AMP, channels_last), then --resume
#
#   OUT=some/dir bash benchmarks/gpu_session.sh        # PYTHON=python3 by default
#
# Everything goes to $OUT: one log and the result files (few files: a device machine returns at most 8).
set -u
OUT=${OUT:-benchmarks/results/gpu-session}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
LOG="$OUT/gpu-session.log"
: >"$LOG"

step() {
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*" | tee -a "$LOG"
    local t0=$SECONDS
    timeout "$limit" "$@" >>"$LOG" 2>&1
    echo "=== $name: exit $? after $((SECONDS - t0)) s" | tee -a "$LOG"
}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    $PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda)"
} >>"$LOG" 2>&1

step gpu_check 100 $PY benchmarks/gpu_check.py
step suite 210 $PY benchmarks/run_suite.py --devices cuda --out-dir "$OUT"
step resnet56_graphs 50 $PY -m reszoo bench resnet56 --device cuda --dtype bf16 --channels-last \
    --batch-size 256 --cuda-graphs --mode both --min-run-time 2 --json "$OUT/resnet56-cuda-graphs.json"
step resnet50_compile 110 $PY -m reszoo bench resnet50 --device cuda --dtype bf16 --channels-last \
    --batch-size 256 --compile --mode both --min-run-time 2 --json "$OUT/resnet50-compiled.json"
RUN=$(mktemp -d)/run
step train 60 $PY -m reszoo train resnet56 --data synthetic --device cuda --amp --channels-last \
    --iterations 300 --batch-size 128 --eval-every 150 --checkpoint-every 150 --no-progress --out "$RUN"
step train_resume 40 $PY -m reszoo train resnet56 --resume "$RUN" --iterations 400 --no-progress
cp "$RUN/run.json" "$OUT/train-run.json" 2>/dev/null
date -u >>"$LOG"
