#!/usr/bin/env bash
# Device-machine driver for benchmarks/bench_gpu_msa.py (run from the repo root; $OUT collects the results).
# Installs the carried wheels (.whl: transformers 5.24 & co, pydantic) and the package into /tmp/site, then
# runs the steps named in $STEPS (tests enginetests kernels sweep probe timeline profile model ncu), each under its own
# time limit.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1
python3 -m pip install -q --no-deps --no-build-isolation --no-compile --target /tmp/site . >/dev/null 2>&1 || echo "package install failed"
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 M3_COMMIT=${M3_COMMIT:-unknown}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
B="python3 -P benchmarks/bench_gpu_msa.py --no-flex --out"
for step in ${STEPS:-tests kernels}; do
  case $step in
    tests) timeout ${T_TESTS:-240} python3 -P -m pytest -q -x -p no:cacheprovider tests/test_kernels_msa.py ${TESTK:+-k "$TESTK"} 2>&1 | tail -5 | tee "$OUT/tests.log";;
    enginetests) timeout 200 python3 -P -m pytest -q -p no:cacheprovider tests/test_kernels_engine_gpu.py 2>&1 | tail -8 | tee "$OUT/enginetests.log";;
    kernels) timeout ${T_KERNELS:-300} $B "$OUT/k" --part kernels ${KARGS:-} 2>&1 | tail -c 20000 > "$OUT/kernels.log";;
    sweep) timeout ${T_SWEEP:-200} $B "$OUT/s" --part fusedsweep ${SARGS:-} 2>&1 | tail -c 20000 > "$OUT/sweep.log";;
    profile)  # Nsight Compute over the step kernels of --part once (B=1, context $PROF_L, variants $PROF_OPS)
      NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
      timeout ${T_PROF:-300} $NCU -f -o "$OUT/prof" -k "regex:${PROF_KERNEL:-step}" -c ${PROF_COUNT:-6} \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
        --section SchedulerStats --section InstructionStats --section SourceCounters --section MemoryWorkloadAnalysis \
        --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
        python3 -P benchmarks/bench_gpu_msa.py --part once --contexts ${PROF_L:-131072} --once-ops ${PROF_OPS:-v3_fp32 v3_bf16} > "$OUT/prof.log" 2>&1
      $NCU --import "$OUT/prof.ncu-rep" --print-details all > "$OUT/prof.txt" 2>&1; tail -3 "$OUT/prof.log";;
    probe) timeout 90 $B "$OUT/p" --part probe 2>&1 | tail -c 5000 > "$OUT/probe.log";;
    timeline) timeout ${T_TIMELINE:-150} $B "$OUT/t" --part timeline ${TARGS:---contexts 131072 1048576 --batches 1 --iters 20} 2>&1 | tail -c 20000 > "$OUT/timeline.log";;
    ncu) command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1 || echo "no ncu";;
    model) timeout ${T_MODEL:-400} $B "$OUT/m" --part model ${MARGS:-} 2>&1 | tail -c 20000 > "$OUT/model.log";;
  esac
done
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
for sub in ("k", "s", "m", "p", "t"):
    p = os.path.join(out, sub, "bench_gpu_msa.json")
    if not os.path.exists(p):
        continue
    rep = json.load(open(p))
    if "probe" in rep:
        print("probe", rep["probe"])
    for r in rep.get("timeline_rows", []):
        print("timeline_rows", r)
    for key in ("kernel_rows", "fused_sweep_rows", "model_rows"):
        for r in rep.get(key, []):
            print(key, {k: v for k, v in r.items() if k.endswith(("_ms", "identical", "share", "ms_fp32sum", "ms_bf16", "ms_minmax_fold", "err_vs_ref", "_hook", "_ops", "error", "per_layer", "seen", "in_launch", "bf16_checks")) or k in ("B", "L", "layers", "ms", "step_tile_bytes", "step_merge_lanes", "step_flat_lanes", "step_tile_bytes_minmax", "step_select_programs", "step_tile_bytes_persistent", "step_tile_bytes_persistent_minmax")})
PY
