#!/usr/bin/env bash
# Stage 3 of the shipped default model, on one GPU (stages 1-2: scripts/make_default_model.sh, on the CPU): render 20
# drives of town seed 7 (drives 1-18 train, 19 val, 20 test: drives 13-20 neither earlier stage saw), then fine-tune
# the stage-2 model at 320x96 with 12 + 12 images per step, bf16 autocast, no moving-object masking (the ablation,
# docs/ablation.md):
#   phase a: STEPS_A steps at lr 1e-4 (the pose network alone for the first 100: the stage-2 file has none);
#   phase b: STEPS_B steps at lr 1e-5 from phase a's weights (pose included): the learning-rate drop;
# then export fp16 with the metric scale measured on the val drive, the accuracy on the test drive and the mIoU.
# The defaults are the shipped model's: 800 + 400 steps, 2.5 + 1.4 minutes on an H200 after 3.5 minutes of
# rendering on 12 cores (on 2 CPU cores with DEVICE=cpu AMP=off: hours).
#
#   bash scripts/gpu_default_model.sh WORK_DIR [MODEL_OUT]       (MODEL_OUT default WORK_DIR/default_gpu.safetensors)
#
# Every phase resumes: a second call continues the runs in WORK_DIR/runs/ (`train --resume`) and skips what is done.
# Environment: STAGES (default synth,a,b,export: a comma list of the stages to run), STEPS_A (800), STEPS_B (400),
# STEPS_PER_EPOCH (200), DEVICE (cuda), AMP (bf16), WORKERS (data-loading processes per loader, default
# (CPUs - 2) / 2), SYNTH_WORKERS (CPUs), END_BY (unix time: on a lent machine, phase a stops early, resumably, so
# that phase b and the export still fit: `train --max-seconds`, which saves the step it stopped at), INIT
# (the stage-2 file; default the shipped model, which is stage 3's result since 2026-12-04: set INIT to rebuild),
# TRAIN_SETTINGS (space-separated KEY=VALUE training settings for both phases, e.g.
# "photometric_resolution=native": each becomes `train --set KEY=VALUE`), POSE_WARMUP_STEPS (100: phase a's first
# steps train only the new pose network; in the 2026-12-04 try the depth got worse for a while after 100 of them).
# Like scripts/gpu_check.sh it runs this checkout without installing anything, with a Python (SGDEPTH_PYTHON, else
# python3) that has the package's training dependencies; rendering also needs embreex and trimesh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/checkout_python.sh"
require_modules torch:torch torchvision:torchvision numpy:numpy cv2:opencv-python-headless PIL:pillow \
  safetensors:safetensors tqdm:tqdm tensorboard:tensorboard embreex:embreex trimesh:trimesh || exit 2

WORK="$(mkdir -p "${1:?usage: gpu_default_model.sh WORK_DIR [MODEL_OUT]}" && cd "$1" && pwd)"
MODEL_OUT="${2:-$WORK/default_gpu.safetensors}"
STAGES=",${STAGES:-synth,a,b,export},"
CPUS=$(nproc)
STEPS_A=${STEPS_A:-800} STEPS_B=${STEPS_B:-400} DEVICE=${DEVICE:-cuda} AMP=${AMP:-bf16}
WORKERS=${WORKERS:-$(( CPUS > 3 ? (CPUS - 2) / 2 : 1 ))}
INIT=${INIT:-$ROOT/sgdepth_ros/models/sgdepth_synthetic_320x96_fp16.safetensors}
DATA="$WORK/data/synth20"
EPOCH=${STEPS_PER_EPOCH:-200}  # validation on the val drive after each epoch
SG=("$PY" -m sgdepth_ros.cli)
cd "$ROOT"

# seconds left before END_BY minus $1 (reserved for what follows); empty without END_BY
seconds_left() { [ -n "${END_BY:-}" ] && echo $(( END_BY - $(date +%s) - $1 )) || true; }

# train_phase RUN RESERVE ARGS...: a new run, or the resumed one; stopped at END_BY - RESERVE when END_BY is set
train_phase() {
  local run=$1 reserve=$2; shift 2
  local cmd=("${SG[@]}" train --out "$run" "$@")
  [ -f "$run/config.json" ] && cmd=("${SG[@]}" train --resume "$run")
  local left; left=$(seconds_left "$reserve")
  if [ -n "$left" ]; then
    if [ "$left" -lt 30 ]; then echo "skipping $run: ${left}s left before END_BY"; return 0; fi
    echo "$(date +%T) ${run##*/}: at most ${left}s (END_BY)"
    # the trainer stops itself at a step boundary and saves it (--max-seconds counts from its first step, so 30 s
    # are left for its start-up); the timeout is only a backstop for a hang, which loses the steps since the last
    # checkpoint
    timeout --kill-after=20 "$((left + 30))s" "${cmd[@]}" --max-seconds "$((left > 60 ? left - 30 : 30))" \
      || [ $? -eq 124 ] || return 1
  else
    "${cmd[@]}"
  fi
}

COMMON=(--synthetic "$DATA" --width 320 --height 96 --seg-resize 512x256 --depth-batch 12 --seg-batch 12
        --num-workers "$WORKERS" --pretrained scratch --no-masking --device "$DEVICE" --amp "$AMP"
        --batches-per-epoch "$EPOCH" --lr-step 10000 --checkpoint-every-steps 100 --checkpoint-every-epochs 10000
        --log-every-steps 10 --image-every-steps 1000 --val-max-images 40 --no-progress)
for setting in ${TRAIN_SETTINGS:-}; do COMMON+=(--set "$setting"); done

if [[ $STAGES == *,synth,* ]] && [ ! -f "$DATA/kitti/splits/synthetic/test_files.txt" ]; then
  echo "$(date +%T) rendering 20 drives into $DATA"
  "${SG[@]}" synth --out "$DATA" --drives 20 --frames 80 --seed 7 --formats kitti,cityscapes --cityscapes-every 2 \
    --workers "${SYNTH_WORKERS:-$CPUS}" --overwrite
fi
if [[ $STAGES == *,a,* ]]; then
  train_phase "$WORK/runs/gpu_a" 150 "${COMMON[@]}" --epochs $(( (STEPS_A + EPOCH - 1) / EPOCH )) --lr 1e-4 \
    --init-weights "$INIT" --set "pose_warmup_steps=${POSE_WARMUP_STEPS:-100}"
  if [ "$WORK/runs/gpu_a/checkpoints/last.pt" -nt "$WORK/gpu_a.safetensors" ]; then  # only what phase a changed
    "${SG[@]}" export "$WORK/runs/gpu_a" -o "$WORK/gpu_a.safetensors" --keep-pose --name "stage 3 phase a"
  fi
fi
if [[ $STAGES == *,b,* ]]; then
  train_phase "$WORK/runs/gpu_b" 60 "${COMMON[@]}" --epochs $(( (STEPS_B + EPOCH - 1) / EPOCH )) --lr 1e-5 \
    --init-weights "$WORK/gpu_a.safetensors"
fi
if [[ $STAGES == *,export,* ]]; then
  "${SG[@]}" export "$WORK/runs/gpu_b" -o "$MODEL_OUT" --fp16 --scale-split val --test-split test \
    --seg-val "$DATA/cityscapes" --device "$DEVICE" --name "sgdepth_ros default: synthetic world, 320x96"
  echo "$(date +%T) wrote $MODEL_OUT"
fi
