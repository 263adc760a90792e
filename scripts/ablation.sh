#!/usr/bin/env bash
# The masking ablation of issue 17, from scratch to docs/ablation.md: render the dynamic world
# (`sgdepth-ros synth --preset dynamic`: a lead car at or near the ego's speed in every drive, oncoming cars near it,
# many parked cars; 10 drives x 80 frames, the last 2 held out for testing), train runs
#   a only depth (reference only-depth settings), b full without masking, c full with masking,
#   d full masking every dynamic pixel (no static-frame detection),
#   e full with masking from epoch 5 of 20 (the reference starts at 15, where the learning rate drops)
# with the same data, seed, step budget and resolution, evaluate them on the test drives (AbsRel and d<1.25 on all,
# moving-object and static pixels; holes = moving-object pixels predicted > 2x too far) and write the table and the
# figure. Rerunning it continues where it stopped: the data is kept, finished runs are kept, others resume exactly.
#
#   scripts/ablation.sh                                  # the study: ~1 h per run on 2 CPU cores at 320x96
#   SEEDS=1,2 scripts/ablation.sh                        # two seeds, mean +- half range in the table
#   DEVICE=cuda AMP=bf16 WIDTH=640 HEIGHT=192 STEPS=3000 scripts/ablation.sh   # on a GPU (the report says so)
#   EXTRA_ARGS="--no-train" scripts/ablation.sh          # report on the runs as they are now
#   EXTRA_ARGS="--set c:masking_from_epoch=10" OUT=runs/ablation_m10 scripts/ablation.sh   # a variation
#
# Settings (environment): DATA (data/ablation), OUT (runs/ablation), REPORT (docs/ablation.md), RUNS (a,b,c,d,e),
# SEEDS (1), STEPS (800 per run), EPOCHS (20), WIDTH/HEIGHT (320/96), DEVICE (auto), AMP (off), NUM_WORKERS (1),
# PRETRAINED (scratch), SYNTH_SEED (17), DRIVES/FRAMES/SYNTH_SIZE/CITYSCAPES_SIZE (the preset's 10/80/640x192/
# 512x256), SGDEPTH (.venv/bin/sgdepth-ros), EXTRA_ARGS (more `sgdepth-ros ablation` flags).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SGDEPTH=${SGDEPTH:-$ROOT/.venv/bin/sgdepth-ros}
cd "$ROOT"  # the defaults below, and the command line the report quotes, are relative to the repository
DATA=${DATA:-data/ablation}
OUT=${OUT:-runs/ablation}
REPORT=${REPORT:-docs/ablation.md}

if [ ! -f "$DATA/synth.json" ]; then
    synth_args=(--preset dynamic --out "$DATA" --seed "${SYNTH_SEED:-17}")
    [ -n "${DRIVES:-}" ] && synth_args+=(--drives "$DRIVES")
    [ -n "${FRAMES:-}" ] && synth_args+=(--frames "$FRAMES")
    if [ -n "${SYNTH_SIZE:-}" ]; then
        synth_args+=(--width "${SYNTH_SIZE%x*}" --height "${SYNTH_SIZE#*x}")
    fi
    [ -n "${CITYSCAPES_SIZE:-}" ] && synth_args+=(--cityscapes-size "$CITYSCAPES_SIZE")
    "$SGDEPTH" synth "${synth_args[@]}"
fi

# shellcheck disable=SC2086  # EXTRA_ARGS is a list of flags
"$SGDEPTH" ablation --data "$DATA" --out "$OUT" --report "$REPORT" \
    --runs "${RUNS:-a,b,c,d,e}" --seeds "${SEEDS:-1}" --steps "${STEPS:-800}" --epochs "${EPOCHS:-20}" \
    --width "${WIDTH:-320}" --height "${HEIGHT:-96}" --device "${DEVICE:-auto}" --amp "${AMP:-off}" \
    --num-workers "${NUM_WORKERS:-1}" --pretrained "${PRETRAINED:-scratch}" --no-progress ${EXTRA_ARGS:-}
