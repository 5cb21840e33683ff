#!/usr/bin/env bash
# One short run on a lent GPU machine, everything the MGFusion issue asks of one, in order of value:
#   1. the machine (GPU, torch) and a search for CLIP weights already there (HF/torch caches, any file
#      with open_clip or ViT-B-32 in its name);
#   2. the CUDA tests (fp16 fuser vs CPU fp32, engine on CUDA);
#   3. CUDA fp16 vs CPU fp32 outputs of the shipped network on real pairs, in gray levels;
#   4. inference time at 640x480 (benchmarks/mgfusion_speed.py, CPU and CUDA in the same run) and the live
#      pipeline (fusioncam bench) on CUDA;
#   5. training for TRAIN_SECONDS (default 270): the full CLIP-guided model if CLIP weights were found,
#      else the full-size network without CLIP (the GPU quality preset); its weights and log come back.
#
# Prepare on the build machine first: `python benchmarks/device_stage.py` (train pairs and wheels into the
# git-ignored .device/), then run with the device tool: command "bash benchmarks/device_check.sh",
# carry [".device"], timeout_s 600. Results land in $OUT (8 files at most come back).
# SMOKE=1 runs the same steps here on the CPU with the project's venv and a tiny budget, to check the
# script itself before spending device time.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/fusioncam_device_out}
TRAIN_SECONDS=${TRAIN_SECONDS:-270}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 QT_QPA_PLATFORM=offscreen FUSIONCAM_DATA="$REPO/.device/data"
log() { echo "== $(date +%T) $*"; }

if [ -n "${SMOKE:-}" ]; then
    PY="$REPO/.venv/bin/python"
    TRAIN_SECONDS=${SMOKE_TRAIN_SECONDS:-40}
else
    PY=python3
    # The device image has torch, timm, OpenCV and scipy; open_clip and kornia travel as wheels.
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$REPO"/.device/whl/*.whl || { echo "wheel install failed: run benchmarks/device_stage.py"; exit 1; }
    # The package laid out as pip installs it: ui/, calibration/, models/, assets/ inside fusioncam/.
    rm -rf /tmp/pkg && mkdir -p /tmp/pkg && cp -r "$REPO/fusioncam" /tmp/pkg/
    for d in ui calibration models assets; do ln -s "$REPO/$d" "/tmp/pkg/fusioncam/$d"; done
    export PYTHONPATH=/tmp/pkg:/tmp/site
fi
# Run from elsewhere, so that the checkout's bare fusioncam/ (without its sub-packages) is not imported.
mkdir -p /tmp/fusioncam_run && cd /tmp/fusioncam_run || exit 1
FC=("$PY" -m fusioncam)

log "1. machine and CLIP weights" | tee "$OUT/summary.txt"
{
    nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none"
    "$PY" -c "import torch, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name() if torch.cuda.is_available() else '-', 'opencv', cv2.__version__)"
    echo "files named like CLIP weights:"
    find ~/.cache /root /home /opt /models /data /mnt /tmp -maxdepth 7 \( -iname '*open_clip*' \
        -o -iname '*vit-b-32*' -o -iname '*vit_b_32*' -o -iname '*clip-vit-base-patch32*' \) \
        -not -path '*/site-packages/*' -not -path '/tmp/site/*' -not -path '/tmp/pkg/*' -not -path '/tmp/pytest-of-*' \
        -not -path '/opt/pypi*' 2>/dev/null | head -20
} 2>&1 | tee -a "$OUT/summary.txt"
CLIP=$("$PY" - <<'EOF' 2>>"$OUT/summary.txt"
from fusioncam.errors import FusioncamError
from fusioncam.models.clip_encoder import resolve_clip_weights
try:
    print(resolve_clip_weights(allow_download=False))
except FusioncamError as e:
    import sys
    print(f"CLIP weights: {e}", file=sys.stderr)
EOF
)
echo "CLIP weights resolved: ${CLIP:-none}" | tee -a "$OUT/summary.txt"

log "2. CUDA tests" | tee -a "$OUT/summary.txt"
"$PY" -m pytest -q -p no:cacheprovider -o addopts="" "$REPO/tests/test_mgfusion_fuser.py" \
    "$REPO/tests/test_engine.py" "$REPO/tests/test_mgfusion_speedups.py" -k "cuda or fp16 or device" 2>&1 \
    | tail -15 | tee -a "$OUT/summary.txt"

log "3. CUDA fp16 vs CPU fp32 on real pairs (gray levels of the 8-bit output)" | tee -a "$OUT/summary.txt"
"$PY" - <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import os, numpy as np, torch
from pathlib import Path
from fusioncam.evaluation.dataset import load_split
from fusioncam.models.fuser import MGFusionFuser
from fusioncam.calibration.images import read_gray
if not torch.cuda.is_available():
    print("no CUDA: skipped")
else:
    cpu, gpu = MGFusionFuser(device="cpu"), MGFusionFuser(device="auto")
    print(f"CPU {cpu.dtype} vs {gpu.device} {gpu.dtype}; tolerance: max 2 gray levels, mean 0.1")
    worst, means = 0, []
    data = Path(os.environ["FUSIONCAM_DATA"])
    staged = sorted(d.name for d in (data / "pairs").iterdir())  # device_stage.py copies a few datasets
    for ds, pairs in load_split("train", data, staged).items():
        for p in pairs[:6]:
            ir, vis = read_gray(str(p.ir)), read_gray(str(p.vis))
            d = np.abs(cpu.fuse(ir, vis).astype(int) - gpu.fuse(ir, vis).astype(int))
            worst = max(worst, int(d.max()))
            means.append(float(d.mean()))
            print(f"{ds}/{p.stem} {ir.shape[1]}x{ir.shape[0]}: max {d.max()} mean {d.mean():.4f} "
                  f"share>1 {(d > 1).mean():.2e}")
    print("PASS" if worst <= 2 and max(means) <= 0.1 else "FAIL", "worst", worst, "largest mean", max(means))
EOF

log "4. inference time, 640x480" | tee -a "$OUT/summary.txt"
RUNS=20 BUDGET=4
[ -n "${SMOKE:-}" ] && RUNS=2 BUDGET=2
# The two architectures' sizes (the noclip variants cost the same minus the CLIP blocks); capped, since a
# killed run would lose the lines still to come.
timeout 120 "$PY" "$REPO/benchmarks/mgfusion_speed.py" --presets mgfusion,mgfusion_fast --devices cuda,cpu \
    --sizes 640x480 --runs $RUNS --budget $BUDGET --threads 8 2>&1 | tee "$OUT/speed.txt" | tail -25 \
    | tee -a "$OUT/summary.txt"
timeout 90 "${FC[@]}" bench --methods average,laplacian,mgfusion --device cuda --frames 300 --seconds 8 \
    --clip-frames 48 --json "$OUT/bench.json" 2>&1 | tail -30 | tee -a "$OUT/summary.txt"

log "5. training for ${TRAIN_SECONDS} s" | tee -a "$OUT/summary.txt"
if [ -n "$CLIP" ]; then
    CFG=(--config "$REPO/models/configs/train_mgfusion.yaml" --clip-weights "$CLIP"); NAME=mgfusion
else
    CFG=(--config "$REPO/models/configs/train_noclip.yaml"); NAME=mgfusion_noclip
fi
[ -n "${SMOKE:-}" ] && CFG+=(--model mgfusion_fast_noclip --crop 64 --batch-size 2 --device cpu --amp none)
# A short probe measures the step time, so that the real run's schedule (warm-up over its first 20%, then
# the decay) fits the budget instead of being cut in the middle.
"${FC[@]}" train "${CFG[@]}" --max-steps 12 --no-eval --out /tmp/probe >/tmp/probe.log 2>&1 \
    || { tail -5 /tmp/probe.log | tee -a "$OUT/summary.txt"; exit 1; }
STEPS=$("$PY" - "$TRAIN_SECONDS" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open("/tmp/probe/log.csv")))
t = [float(r["time_s"]) for r in rows]
# The first step carries the start-up; the 1.25 covers the checkpoint at every epoch's end, which the
# probe does not see (a 240 s run on an H200 measured 0.24 s per step against the probe's 0.19).
per_step = 1.25 * (t[-1] - t[1]) / max(1, len(t) - 2)
budget = float(sys.argv[1]) - 2.0 * t[0]  # start-up and the final save
print(max(20, int(budget / per_step)))
EOF
)
echo "$NAME: $STEPS steps to fit the budget (probe: $(tail -1 /tmp/probe/log.csv | cut -d, -f8) s for 12)" \
    | tee -a "$OUT/summary.txt"
# Capped too: a run cut short still leaves its last epoch's checkpoint, which is taken instead.
timeout $((TRAIN_SECONDS + 60)) "${FC[@]}" train "${CFG[@]}" --max-steps "$STEPS" --no-eval --out /tmp/run \
    > /tmp/run.log 2>&1 || echo "training stopped early (rc $?)" | tee -a "$OUT/summary.txt"
tail -3 /tmp/run.log | tr '\r' '\n' | tail -3 | tee -a "$OUT/summary.txt"
WEIGHTS=/tmp/run/model.safetensors
[ -f "$WEIGHTS" ] || WEIGHTS=$(ls /tmp/run/checkpoints/epoch_*.safetensors 2>/dev/null | tail -1)
[ -n "$WEIGHTS" ] && cp "$WEIGHTS" "$OUT/${NAME}_gpu.safetensors" && echo "weights: $WEIGHTS" | tee -a "$OUT/summary.txt"
cp /tmp/run/log.csv "$OUT/train_log.csv" 2>/dev/null
cp /tmp/run/config.yaml "$OUT/train_config.yaml" 2>/dev/null
log "done" | tee -a "$OUT/summary.txt"
