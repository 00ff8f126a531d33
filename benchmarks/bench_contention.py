"""Decode under a competing process: the engine's decode-thread guard on vs off.

A generation of --tokens greedy tokens after an 8K prompt (default model, automatic threads); --after seconds into the
decode a busy Python process starts and spins for --busy seconds. "guard" = the engine as shipped
(engine.DecodeThreadGuard re-asks the thread rule after a stalled step), "off" = the guard disabled, alternating.
Prints one JSON line per run: decode seconds and tokens/s, the decode threads at the end, the token at which the
competitor started. (On a 2-core machine nothing else should run meanwhile.)

Run: python benchmarks/bench_contention.py [--rounds 2] [--tokens 160] [--after 1.0] [--busy 4.0]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

from m3analyst.engine import host as engine_mod
from m3analyst.engine import load_engine
from m3analyst.engine.bench import corpus_ids
from m3analyst.settings import EngineSettings

GUARD = {"guard": (engine_mod.DecodeThreadGuard.STALL, engine_mod.DecodeThreadGuard.RECHECK_STEPS), "off": (math.inf, 10**9)}


def run(eng, ids, mode: str, args) -> dict:
    engine_mod.DecodeThreadGuard.STALL, engine_mod.DecodeThreadGuard.RECHECK_STEPS = GUARD[mode]
    sess = eng.prefill(ids, reserve=args.tokens + 8)
    busy, started_at = None, None
    t0 = time.perf_counter()
    for i, _ in enumerate(sess.generate("", max_new_tokens=args.tokens, temperature=0.0, stream=True)):
        if busy is None and time.perf_counter() - t0 > args.after:
            busy = subprocess.Popen([sys.executable, "-c", f"import time\nt = time.time()\nwhile time.time() - t < {args.busy}: pass"])
            started_at = i
    seconds = time.perf_counter() - t0
    if busy is not None:
        busy.wait()
    st = eng.last_result.stats
    return dict(mode=mode, decode_s=round(seconds, 2), decode_tok_s=round(st.decode_tok_s, 1),
                threads_at_end=eng._decode_threads, competitor_from_piece=started_at)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=160)
    ap.add_argument("--after", type=float, default=1.0)
    ap.add_argument("--busy", type=float, default=4.0)
    args = ap.parse_args()
    eng = load_engine(EngineSettings())
    eng.eos_ids, eng.track_hits = set(), False
    ids = corpus_ids(eng, 7900)
    print(json.dumps(dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **vars(args))))
    try:
        for _ in range(args.rounds):
            for mode in GUARD:
                print(json.dumps(run(eng, ids, mode, args)), flush=True)
                time.sleep(1)
    finally:
        engine_mod.DecodeThreadGuard.STALL, engine_mod.DecodeThreadGuard.RECHECK_STEPS = GUARD["guard"]


if __name__ == "__main__":
    main()
