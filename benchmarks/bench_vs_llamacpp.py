"""m3analyst's engine against llama.cpp on the same GGUF, machine, threads and token ids, in one run.

llama.cpp is llama-cpp-python built from source in this benchmark's own venv (never a project dependency):
native CPU flags (GGML_NATIVE), flash attention on, n_batch 512 (its best configuration on the 2-core VMs we tried).
Both sides get the same token ids (real contract text, cut to each context length), prefill them, then decode
`--steps` greedy tokens one at a time. Reported per context: prefill seconds, decode tokens/s and decode CPU
milliseconds per token (the process's own CPU time: the figure to read on a shared machine) of each side, the
ratios, the 1-minute load before and after, the CPU model and its SIMD flags.

Run (the first run builds llama.cpp: ~10-20 min on 2 cores):
    python benchmarks/bench_vs_llamacpp.py --contexts 2048,8192 --threads 2 --out benchmarks/vs_llamacpp.json
Add `--set engine.kernels.isa=avx2` style overrides through M3ANALYST_* variables (e.g. M3ANALYST_ISA=avx2) to
emulate an AVX2-only CPU on an AVX-512 machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

LLAMA_CPP_VERSION = "0.3.16"

# Runs inside the llama.cpp venv: reads {"gguf", "ids", "steps", "threads", "n_ctx"} on stdin, prints JSON.
# Greedy picks read the last position's logits from the context (without logits_all, `Llama.scores` stays empty).
LLAMA_SIDE = r"""
import json, sys, time
import llama_cpp, numpy as np
from llama_cpp import Llama
a = json.load(sys.stdin)
llm = Llama(model_path=a["gguf"], n_ctx=a["n_ctx"], n_threads=a["threads"], n_threads_batch=a["threads"],
            n_batch=512, flash_attn=True, verbose=False)
def last():
    return int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).argmax())
ids = a["ids"]
t0 = time.perf_counter(); llm.eval(ids); t1 = time.perf_counter()
tok = last()
t2, c2 = time.perf_counter(), time.process_time()
for _ in range(a["steps"]):
    llm.eval([tok]); tok = last()
t3, c3 = time.perf_counter(), time.process_time()
print(json.dumps({"prefill_s": t1 - t0, "decode_tok_s": a["steps"] / (t3 - t2),
                  "decode_cpu_ms_per_token": 1e3 * (c3 - c2) / a["steps"]}))
"""


def cpu_description() -> dict:
    model, flags = platform.processor(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
            if line.startswith("flags"):
                flags = [f for f in line.partition(":")[2].split() if f.startswith(("avx", "amx", "fma"))]
                break
    except OSError:
        pass
    return {"cpu": model, "simd_flags": " ".join(sorted(flags)), "cores": os.cpu_count()}


def ensure_llama_venv(venv: Path) -> Path:
    """The venv's python, with llama-cpp-python built from source (native flags) on first use."""
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import llama_cpp"], capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = dict(os.environ, CMAKE_ARGS="-DGGML_NATIVE=ON", CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 1))
    print(f"building llama-cpp-python {LLAMA_CPP_VERSION} from source in {venv} (first run only) ...", file=sys.stderr)
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-binary", "llama-cpp-python",
                    f"llama-cpp-python=={LLAMA_CPP_VERSION}"], check=True, env=env)
    return python


def llama_side(python: Path, gguf: Path, ids: list[int], steps: int, threads: int) -> dict:
    payload = json.dumps({"gguf": str(gguf), "ids": ids, "steps": steps, "threads": threads,
                          "n_ctx": len(ids) + steps + 16})
    out = subprocess.run([python, "-c", LLAMA_SIDE], input=payload, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def m3_side(engine, ids: list[int], steps: int) -> dict:
    from m3analyst.engine.bench import bench_one

    row = bench_one(engine, ids, "msa", steps)
    return {"prefill_s": row.prefill_s, "decode_tok_s": row.decode_tok_s, "decode_cpu_ms_per_token": row.decode_cpu_ms_per_token}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contexts", default="2048,8192")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="registry name whose pulled GGUF both sides run")
    ap.add_argument("--venv", default=None, help="llama.cpp venv (default $M3ANALYST_HOME/bench/llamacpp-venv)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from m3analyst.engine import load_engine
    from m3analyst.engine.bench import corpus_ids
    from m3analyst.resources import home_dir
    from m3analyst.settings import EngineSettings

    settings = EngineSettings(model=args.model, threads=args.threads, decode_threads=args.threads)
    engine = load_engine(settings)
    from m3analyst.engine.catalog import MODELS

    if args.model in MODELS:  # the memo's time-budget cap (engine/auto.py, measured under load) does not apply here
        engine.context_length = MODELS[args.model].context_length or engine.context_length
    gguf = next((home_dir() / "models" / args.model).glob("*.gguf"), None)
    if gguf is None:
        sys.exit(f"no GGUF for {args.model} under {home_dir() / 'models'}: run `m3analyst models pull {args.model}`")
    python = ensure_llama_venv(Path(args.venv) if args.venv else home_dir() / "bench" / "llamacpp-venv")
    engine.eos_ids = set()
    rows = []
    for ctx in (int(c) for c in args.contexts.split(",")):
        ids = corpus_ids(engine, min(ctx, engine.context_length - args.steps - 2))
        load0 = os.getloadavg()[0]
        m3 = m3_side(engine, ids, args.steps)
        llama = llama_side(python, gguf, ids, args.steps, args.threads)
        rows.append({"context": len(ids), "m3analyst": m3, "llama_cpp": llama,
                     "decode_ratio": round(m3["decode_tok_s"] / llama["decode_tok_s"], 2),
                     "decode_cpu_ratio": round(llama["decode_cpu_ms_per_token"] / m3["decode_cpu_ms_per_token"], 2),
                     "prefill_ratio": round(llama["prefill_s"] / m3["prefill_s"], 2),
                     "load_before": load0, "load_after": os.getloadavg()[0]})
        print(json.dumps(rows[-1]), flush=True)
    report = {"machine": cpu_description(), "threads": args.threads, "engine": engine.info().get("op_paths"),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "llama_cpp_python": LLAMA_CPP_VERSION,
              "gguf": gguf.name, "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
