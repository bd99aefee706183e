#!/usr/bin/env bash
# GPU checks, every stage under its own time limit, everything written to $OUT:
#   smoke       the CUDA smoke of every command (python -m pytest -m gpu), each command's output kept
#   paper       the paper protocol: 4 backbones x 100 epochs, head only, then report
#               (benchmarks/paper_protocol.py; jobs still running after PAPER_LIMIT s get SIGTERM)
#   throughput  per-step overheads: Lightning and StopOnNonFiniteLoss against a plain loop (head, full)
#   occlusion   occlusion against Captum (benchmarks/occlusion.py)
#   audit       the audit against one occlusion pass (benchmarks/audit.py)
# Run from the repository root:  OUT=gpu-session STAGES="smoke paper" bash benchmarks/gpu_session.sh
# All stages take about 15 minutes on one H200; one device call is at most 10, so run them in two.
set -u
OUT=${OUT:-gpu-session}
STAGES=${STAGES:-smoke paper throughput occlusion audit}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT/logs"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline WANDB_SILENT=true
export DEEPCOVID_CACHE_DIR=${DEEPCOVID_CACHE_DIR:-/tmp/deepcovid-cache}
export DEEPCOVID_GPU_SMOKE_LOGS="$OUT/logs"
WORK=${WORK:-/tmp/deepcovid-gpu}
mkdir -p "$WORK"
started=$(date +%s)

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PYTHON" -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'lightning', lightning.__version__, torch.cuda.get_device_name())"
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

collect_paper() {  # the paper protocol's tables, logs and per-job profiles
  cp "$WORK"/paper/paper_protocol.* "$WORK"/paper/report-*.log "$OUT/logs/" 2>/dev/null
  for job in "$WORK"/paper/sweep-head/[0-9]*; do
    name=$(basename "$job")
    cp "$job/fit-profile.txt" "$OUT/logs/fit-profile-$name.txt" 2>/dev/null
    cp "$job/stdout.log" "$OUT/logs/stdout-$name.log" 2>/dev/null
    cp "$job/csv/metrics.csv" "$OUT/logs/metrics-$name.csv" 2>/dev/null
  done
  cp "$WORK/paper/sweep-head/comparison/comparison.md" "$OUT/logs/" 2>/dev/null
}

echo "| stage | exit | seconds | limit |" > "$OUT/stages.md"
echo "|---|---|---|---|" >> "$OUT/stages.md"
for name in $STAGES; do
  case $name in
    smoke) stage smoke "${SMOKE:-300}" "$PYTHON" -m pytest -m gpu tests/integration/test_gpu.py \
             -q -rA --tb=short -p no:cacheprovider ;;
    paper) stage paper "${PAPER:-330}" "$PYTHON" -m benchmarks.paper_protocol --out "$WORK/paper" \
             --modes head:100 --jobs 4 --workers 3 --time-limit "${PAPER_LIMIT:-280}"
           collect_paper ;;
    throughput)
      for mode in head full; do
        stage "throughput_$mode" "${THROUGHPUT:-70}" "$PYTHON" -m benchmarks.throughput \
          --device cuda --precision bf16-mixed --channels-last --finetune "$mode" \
          --batch-size 128 --steps 20 --repeats 2
      done ;;
    occlusion) stage occlusion "${OCCLUSION:-60}" "$PYTHON" benchmarks/occlusion.py --device cuda --repeats 1 ;;
    audit) stage audit "${AUDIT:-90}" "$PYTHON" -m benchmarks.audit --images "${AUDIT_IMAGES:-500}" --device cuda ;;
    *) echo "unknown stage $name" >&2 ;;
  esac
done
echo "whole session: $(( $(date +%s) - started )) s" | tee -a "$OUT/stages.md"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$OUT/logs"
