#!/usr/bin/env bash
# One GPU session, every stage under its own time limit, everything written to $OUT:
#   1. the CUDA smoke of every command (python -m pytest -m gpu)
#   2. the paper protocol: 4 backbones x 100 epochs, head only, then report (benchmarks/paper_protocol.py)
#   3. per-step overheads: Lightning and StopOnNonFiniteLoss against a plain loop (benchmarks/throughput.py)
#   4. occlusion against Captum (benchmarks/occlusion.py), the audit against one occlusion pass (benchmarks/audit.py)
# Run from the repository root:  OUT=gpu-session bash benchmarks/gpu_session.sh
# Limits (seconds) can be changed: SMOKE=… PAPER=… THROUGHPUT=… OCCLUSION=… AUDIT=… FULL=…
set -u
OUT=${OUT:-gpu-session}
mkdir -p "$OUT/logs"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline WANDB_SILENT=true
export DEEPCOVID_CACHE_DIR=${DEEPCOVID_CACHE_DIR:-/tmp/deepcovid-cache}
WORK=${WORK:-/tmp/deepcovid-gpu}
mkdir -p "$WORK"
started=$(date +%s)

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  ${PYTHON:-python3} -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'lightning', lightning.__version__, torch.cuda.get_device_name())"
  nproc
} > "$OUT/machine.txt" 2>&1

stage() {  # stage NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2 t0 rc
  shift 2
  t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/logs/$name.log" 2>&1
  rc=$?
  echo "| $name | $rc | $(( $(date +%s) - t0 )) | $limit |" | tee -a "$OUT/stages.md"
}

echo "| stage | exit | seconds | limit |" > "$OUT/stages.md"
echo "|---|---|---|---|" >> "$OUT/stages.md"
stage smoke "${SMOKE:-180}" "${PYTHON:-python3}" -m pytest -m gpu tests/integration/test_gpu.py -q -rA \
  -p no:cacheprovider --junitxml="$OUT/logs/smoke.xml"
stage paper "${PAPER:-210}" "${PYTHON:-python3}" -m benchmarks.paper_protocol --out "$WORK/paper" \
  --modes head:100 --jobs 4 --workers 3
cp "$WORK/paper/paper_protocol.md" "$WORK/paper/paper_protocol.json" "$OUT/logs/" 2>/dev/null
cp "$WORK"/paper/*-head.log "$OUT/logs/" 2>/dev/null
for job in "$WORK"/paper/sweep-head/[0-9]*; do
  cp "$job/fit-profile.txt" "$OUT/logs/fit-profile-$(basename "$job").txt" 2>/dev/null
  cp "$job/train.log" "$OUT/logs/train-$(basename "$job").log" 2>/dev/null
  cp "$job/csv/metrics.csv" "$OUT/logs/metrics-$(basename "$job").csv" 2>/dev/null
done
cp "$WORK/paper/sweep-head/comparison/comparison.md" "$OUT/logs/" 2>/dev/null
stage throughput_head "${THROUGHPUT:-35}" "${PYTHON:-python3}" -m benchmarks.throughput --device cuda \
  --precision bf16-mixed --channels-last --finetune head --batch-size 128 --steps 20 --repeats 2
stage throughput_full "${THROUGHPUT:-35}" "${PYTHON:-python3}" -m benchmarks.throughput --device cuda \
  --precision bf16-mixed --channels-last --finetune full --batch-size 128 --steps 20 --repeats 2
stage occlusion "${OCCLUSION:-45}" "${PYTHON:-python3}" benchmarks/occlusion.py --device cuda --repeats 1
stage audit "${AUDIT:-40}" "${PYTHON:-python3}" -m benchmarks.audit --images 500 --device cuda
if [ "${FULL:-0}" -gt 0 ]; then
  stage paper_full "$FULL" "${PYTHON:-python3}" -m benchmarks.paper_protocol --out "$WORK/paper_full" \
    --modes full:10 --jobs 4 --workers 3
  cp "$WORK/paper_full/paper_protocol.md" "$OUT/logs/paper_protocol_full.md" 2>/dev/null
fi
echo "whole session: $(( $(date +%s) - started )) s" | tee -a "$OUT/stages.md"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$OUT/logs"
