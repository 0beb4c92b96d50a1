#!/usr/bin/env bash
# Your own images on a GPU, end to end through the CLI, on real files drawn with PIL (tests/_images.py):
#   1. reszoo train on an image folder from scratch (AMP, channels_last), then a fine-tune of its
#      model on another folder with a frozen backbone
#   2. reszoo evaluate (centre crop, ten crop, multi-scale) and reszoo predict on the held-out images
#   3. reszoo bench resnet50 --compare torchvision: the same network side by side on the GPU
#
#   OUT=some/dir bash benchmarks/gpu_own_images.sh        # PYTHON=python3 by default
set -u
OUT=${OUT:-benchmarks/results/gpu-own-images}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu: the same steps on a CPU (slower), to check the script
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
LOG="$OUT/gpu-own-images.log"
: >"$LOG"
WORK=$(mktemp -d)

step() {
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*" | tee -a "$LOG"
    local t0=$SECONDS
    timeout "$limit" "$@" >>"$LOG" 2>&1
    echo "=== $name: exit $? after $((SECONDS - t0)) s" | tee -a "$LOG"
}

$PY - "$WORK" >>"$LOG" 2>&1 <<'EOF'
import sys
sys.path.insert(0, "tests")
from _images import make_image_folder
root = sys.argv[1]
make_image_folder(f"{root}/shapes", per_class=300, val_per_class=50, size=32, seed=0)
make_image_folder(f"{root}/two", classes=("circle", "triangle"), per_class=60, val_per_class=20, size=32, seed=1)
print("image folders written under", root)
EOF

step train 90 $PY -m reszoo train resnet20 --data folder --root "$WORK/shapes" --device "$DEVICE" --amp --channels-last \
    --iterations "${ITERS:-600}" --batch-size 64 --lr 0.05 --schedule cosine --eval-every "$(( ${ITERS:-600} / 2 ))" --no-progress --out "$WORK/run"
step finetune 60 $PY -m reszoo train resnet20 --pretrained "$WORK/run/model" --data folder --root "$WORK/two" \
    --device "$DEVICE" --freeze-backbone --iterations 100 --batch-size 32 --no-progress --out "$WORK/ft"
step evaluate 60 $PY -m reszoo evaluate "$WORK/run" --data folder --root "$WORK/shapes" --device "$DEVICE" \
    --json "$OUT/evaluate.json"
step evaluate_ten_crop 60 $PY -m reszoo evaluate "$WORK/run" --data folder --root "$WORK/shapes" --device "$DEVICE" --ten-crop
step evaluate_multi_scale 60 $PY -m reszoo evaluate "$WORK/run" --data folder --root "$WORK/shapes" --device "$DEVICE" \
    --multi-scale
step evaluate_finetuned 60 $PY -m reszoo evaluate "$WORK/ft" --data folder --root "$WORK/two" --device "$DEVICE"
step predict 60 $PY -m reszoo predict "$WORK/ft" "$WORK/two/val" --top-k 2 --device "$DEVICE" --json "$OUT/predict.json"
if [ "$DEVICE" = cuda ] && [ "${BENCH:-1}" = 1 ]; then  # BENCH=0 skips it
    step resnet50_vs_torchvision 120 $PY -m reszoo bench resnet50 --device cuda --compare torchvision --dtype bf16 \
        --channels-last --batch-size 256 --mode both --json "$OUT/resnet50-vs-torchvision.json"
fi
cp "$WORK/run/run.json" "$OUT/train-run.json" 2>/dev/null
cp "$WORK/ft/model/config.json" "$OUT/finetuned-config.json" 2>/dev/null
