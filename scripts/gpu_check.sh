#!/usr/bin/env bash
# The trainer engine's CUDA path, once, on a machine with torch and a GPU but no web stack:
#   bf16 autocast on one GPU with ONNX export and parity; DDP with nccl across the GPUs (2 at most)
#   or, on a one-GPU machine, the same DDP code with gloo on the CPU.
# Usage: scripts/gpu_check.sh [OUT_DIR]   (one JSON summary per check in OUT_DIR, default ./gpu-check)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check}}"
mkdir -p "$out"
py="${PYTHON:-python3}"
engine() { "$py" -m apps.training.engine "$@"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/gpus.csv" 2>&1
gpus=$("$py" -c 'import torch; print(torch.cuda.device_count())')
echo "torch $("$py" -c 'import torch; print(torch.__version__, torch.version.cuda)'), GPUs: $gpus"

status=0
run() {  # name, engine arguments...
  local name=$1; shift
  local t0=$SECONDS
  if engine "$@" >"$out/$name.json" 2>"$out/$name.log"; then
    echo "ok    $name ($((SECONDS - t0)) s)"
  else
    echo "FAIL  $name ($((SECONDS - t0)) s): $(tail -3 "$out/$name.log")"; status=1
  fi
}

run cuda-bf16-export --template digits-cnn --device cuda --bf16 --epochs 3 --seed 0 \
  --export "$out/digits-cuda.onnx" --checkpoint "$out/digits-cuda.ckpt"
run cuda-fp32-mlp --template tabular-mlp-classifier --device cuda --epochs 3 --seed 0 --export "$out/mlp-cuda.onnx"
if [ "$gpus" -ge 2 ]; then
  run ddp-nccl-2 --template digits-cnn --device cuda --bf16 --ddp 2 --epochs 3 --seed 0 --export "$out/digits-ddp.onnx"
else
  echo "one GPU: nccl DDP needs two; running the same DDP code with gloo on the CPU instead"
  run ddp-gloo-2 --template digits-cnn --device cpu --ddp 2 --epochs 2 --seed 0 --export "$out/digits-gloo.onnx"
fi
"$py" - "$out" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for path in sorted(out.glob("*.json")):
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        continue
    onnx = doc.get("export") or {}
    res = doc.get("resources") or {}
    print(f"{path.stem}: status={doc.get('status')} epochs={doc.get('epochs_completed')} "
          f"metrics={ {k: round(v, 4) for k, v in (doc.get('metrics') or {}).items() if isinstance(v, float)} } "
          f"device={doc.get('device')} bf16={doc.get('bf16')} world={doc.get('world_size')} "
          f"exporter={onnx.get('exporter')} parity_max_abs_diff={onnx.get('parity_max_abs_diff')} gpu_s={res.get('gpu_s')} "
          f"peak_gpu_mem_mb={res.get('peak_gpu_mem_mb')} wall_s={res.get('wall_s')}")
EOF
exit $status
