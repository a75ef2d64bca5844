#!/usr/bin/env bash
# One prepared device session on a GPU host (shared/docs/GPU_CHECKS.md): a lent machine has minutes, so everything
# that needs the GPU runs in one call, each stage under its own time limit, and every result lands in OUT.
#
#   bash bench/gpu-session.sh OUT [BUDGET_S]        (on the GPU host, in the copied working tree)
#
# Needs .gpu/ prepared on the build machine by bench/gpu-pack.sh (node binary, CUDA addon, dist/, the runtime
# packages, the commit, and optionally trial zoos .gpu/zoo-*.safetensors with .gpu/trials-*.json configurations).
# Stages, in order:
#   1. the GPU check (bench/gpu-check.mjs): engine parity and benchmarks (recompute mode included) + the PyTorch peer
#      (eager) + the fused flow step's parity and timing; geometry only with GEOMETRY=1 → OUT/gpu-check.json
#  1b. other kernel settings side by side (WSF_GEMM=v1, tc, tf32; 128-row weight-gradient splits, WSF_SPLITK_ROWS;
#      16 attention warps, WSF_ATTN_WARPS; --bench-only on the four sparse training workloads, with the per-op
#      profile) → OUT/gemm-<name>/gpu-check.json
#  1c. the tensor-core GEMM (WSF_GEMM=tc, 3×TF32) through the whole op and engine parity suite → OUT/gemm-tc-parity/
#   2. the end-to-end flow benchmark per geometry on CUDA (bench/flow.mjs, mixture prior by run): the host-orchestrated
#      step, the fused device-resident step, and the fused step with the prior drawn on the device, side by side
#      → OUT/<date>-<sha>-cuda-flow-mixture.json
#   3. with the time left, sample-quality trials on CUDA (bench/quality/trials.mjs), one process per .gpu/trials-*.json,
#      run side by side, each training under a time budget (--max-seconds) → OUT/trials-*.jsonl (SAVE_FLOWS=1: the
#      flows too; at most 8 files come back from a device run)
# The full log is OUT/session.log. BUDGET_S (default 560) is the wall time the whole script may use.
set -u
OUT=${1:?usage: gpu-session.sh OUT [BUDGET_S]}
BUDGET=${2:-560}
start=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - start))); }
# A stage's time limit: its own (the first argument) or what is left of the budget less 5 s, whichever is smaller; 0
# when under 15 s are left (the stage is skipped, so the whole script stays inside BUDGET and every file lands).
cap() { local l=$(($(left) - 5)); if ((l < 15)); then echo 0; elif (($1 < l)); then echo "$1"; else echo "$l"; fi; }
# run_capped WANT_S CMD...: runs CMD under `timeout $(cap WANT_S)`, or says it was skipped.
run_capped() {
  local t
  t=$(cap "$1"); shift
  if ((t == 0)); then echo "skipped (budget spent): $*"; return 124; fi
  timeout "$t" "$@"
}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1

xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node || { echo "cannot unpack node"; exit 2; }
tar -xJf .gpu/runtime.tar.xz || { echo "cannot unpack the runtime"; exit 2; }
export WSF_COMMIT
WSF_COMMIT=$(cat .gpu/commit)
export WSF_QUIET=1 WSF_PEER_TIMEOUT_S=${WSF_PEER_TIMEOUT_S:-90}
echo "commit $WSF_COMMIT, node $(/tmp/node --version), $(nproc) cores, budget ${BUDGET} s"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -3

echo "== 1. GPU check ($(left) s left)"
# The geometry section (parity passed on the H200 on 2026-12-04, 316 cases) only with GEOMETRY=1: the budget goes
# to the engine (parity, timings incl. recompute mode) and the fused flow step.
run_capped "${CHECK_S:-280}" /tmp/node bench/gpu-check.mjs "$OUT" --seconds 0.2 --peer=eager --only "engine,flow${GEOMETRY:+,geometry}"
echo "gpu-check exit $?"

echo "== 1b. engine timings with the other GEMM kernels, side by side ($(left) s left)"
# One pass per kernel setting (environment assignments; the default is WSF_GEMM=v2, 512 rows per weight-gradient
# split, 4 attention warps): each writes OUT/gemm-<name>/gpu-check.json.
passes=("v1:WSF_GEMM=v1" "tc:WSF_GEMM=tc" "tf32:WSF_GEMM=tf32" "v2-rows128:WSF_SPLITK_ROWS=128"
  "tc-rows128:WSF_GEMM=tc WSF_SPLITK_ROWS=128" "attn16:WSF_ATTN_WARPS=16" "tc-rows128-attn16:WSF_GEMM=tc WSF_SPLITK_ROWS=128 WSF_ATTN_WARPS=16")
for p in "${passes[@]}"; do
  name=${p%%:*}
  # shellcheck disable=SC2086
  run_capped "${GEMM_S:-40}" env ${p#*:} /tmp/node bench/gpu-check.mjs "$OUT/gemm-$name" --only engine --bench-only \
    --skip-cpu-bench --peer=none --workloads=wdbc,mnist,mnist-b64,mnist-wide
  echo "pass $name (${p#*:}) exit $?"
done

echo "== 1c. parity with the tensor-core GEMM, WSF_GEMM=tc ($(left) s left)"
run_capped "${TC_PARITY_S:-90}" env WSF_GEMM=tc /tmp/node bench/gpu-check.mjs "$OUT/gemm-tc-parity" --only engine --parity-only --peer=none
echo "gemm tc parity exit $?"

echo "== 2. flow benchmark ($(left) s left)"
run_capped "${FLOW_S:-90}" /tmp/node bench/flow.mjs --device cuda --steps 30 --sample-steps 16 --prior mixture --out "$OUT"
echo "flow bench exit $?"

shopt -s nullglob
trials=(.gpu/trials-*.json)
if ((${#trials[@]})); then
  # Training gets what is left minus a margin for alignment, sampling and evaluation.
  margin=${TRIAL_MARGIN_S:-100}
  train_s=$(($(left) - margin))
  echo "== 3. ${#trials[@]} trial(s) side by side, ${train_s} s of training each ($(left) s left)"
  if ((train_s > 20)); then
    pids=()
    for f in "${trials[@]}"; do
      name=$(basename "$f" .json)
      zoo=$(/tmp/node -e "process.stdout.write(require('./$f').zoo)")
      mapfile -t targs < <(/tmp/node -e "for (const t of require('./$f').trials) console.log(JSON.stringify(t))")
      args=()
      for t in "${targs[@]}"; do args+=(--trial "$t"); done
      timeout $(($(left) - 5)) /tmp/node bench/quality/trials.mjs --zoo "$zoo" --device cuda --max-seconds "$train_s" \
        --samples 128 --bma 1,4,16,64 ${SAVE_FLOWS:+--save-flow "$OUT/$name.safetensors"} --out "$OUT/$name.jsonl" "${args[@]}" 2>&1 |
        sed -u "s/^/[$name] /" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
  fi
fi
echo "session done in $(($(date +%s) - start)) s"
