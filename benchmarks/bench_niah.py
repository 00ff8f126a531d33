"""Needle-in-a-haystack harness, MSA vs dense, for models given by path (or registry name).

SmolLM2-135M cannot retrieve a needle even with dense attention (measured for the issue), so this is
for larger models: `python benchmarks/bench_niah.py --model /path/to/hf_dir_or.gguf --contexts 4096,16384`.
The haystack is real contract text from the corpus; a one-sentence needle (a random 6-digit code) is
inserted at each depth; the model is asked for the code; a hit = the code appears in the greedy answer.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from m3analyst.engine import load_engine
from m3analyst.engine.bench import corpus_ids
from m3analyst.settings import EngineSettings

QUESTION = "\n\nWhat is the secret access code mentioned in the text above? Answer with the code only."


def build_prompt(eng, context: int, depth: float, code: str) -> str:
    needle = f" The secret access code is {code}. Remember it. "
    budget = context - eng.count_tokens(needle + QUESTION) - 64
    hay = eng.tokenizer.decode(corpus_ids(eng, budget))
    cut = int(len(hay) * depth)
    cut = hay.rfind(". ", 0, cut) + 2 if hay.rfind(". ", 0, cut) > 0 else cut
    text = hay[:cut] + needle + hay[cut:] + QUESTION
    if getattr(eng.tokenizer, "chat_template", None):
        return eng.render_chat([{"role": "user", "content": text}])
    return text + "\nThe code is"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--contexts", default="4096,8192")
    ap.add_argument("--depths", default="0.1,0.5,0.9")
    ap.add_argument("--attention", default="dense,msa")
    ap.add_argument("--top-k", type=int, default=None)
    args = ap.parse_args()
    eng = load_engine(EngineSettings(model=args.model))
    if args.top_k:
        eng.settings.attention.top_k = args.top_k
    rng = random.Random(0)
    for context in [int(c) for c in args.contexts.split(",")]:
        context = min(context, eng.context_length - 32)
        for depth in [float(d) for d in args.depths.split(",")]:
            code = f"{rng.randrange(10**5, 10**6)}"
            prompt = build_prompt(eng, context, depth, code)
            for backend in args.attention.split(","):
                eng.settings.attention.backend = backend
                t = time.perf_counter()
                res = eng.generate(prompt, max_new_tokens=16)
                print(json.dumps({"model": eng.name, "context": res.stats.prompt_tokens, "depth": depth, "backend": backend,
                                  "hit": code in res.text, "answer": res.text.strip()[:60],
                                  "seconds": round(time.perf_counter() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()
