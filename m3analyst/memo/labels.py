"""Label answers: questions whose answer is one of a few labels (yes / no / maybe; significantly increased /
significantly decreased / no significant difference) always get a label, a one-sentence reason, evidence quotes
with pages, the source (rules, model, or both) and a confidence. Never a passage alone.

Two readers, combined:
- rules (from definitions, not from any one paper's wording): for yes/no/maybe, the statements of the document
  nearest the question: significant findings, statements of no difference, hedging ('may', 'a trend'), negation
  and whether their direction agrees with the question's; for effect questions, memo/effect.py's reading of the
  reporting sentence (domains/bio/effects.py);
- the model as a reader: the document is prefilled ONCE (shared by all questions on it) and the model scores each
  label's likelihood after the question (a few tokens per label), no generation.

The combination is a multinomial logistic model over the rule features and the model's label log-probabilities.
Its weights are calibrated on the dev sets (`benchmarks/calibrate_labels.py`) and live in the domain spec
(`labels:` in domains/bio/spec.yaml), not in code; without weights the rules decide alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from m3analyst.domains.bio.effects import (DOWN_WORDS, NO_DIFF, SIG_WORD, UP_WORDS, clauses, direction, estimates, outcome_overlap,
                                           p_significance, significance)
from m3analyst.domains.spec import DomainSpec
from m3analyst.text import Span, sentences, squash
from m3analyst.ingest.model import Citation, Document
from m3analyst.memo.effect import LABELS as EFFECT_LABELS
from m3analyst.memo.effect import asks_effect, read_candidates
from m3analyst.memo.types import Answer
from m3analyst.memo.passages import BM25

YESNO = ("yes", "no", "maybe")
_WH = re.compile(r"^\s*(?:what|which|how|why|when|where|who|whom|whose|list|describe|explain|summari[sz]e|name)\b", re.I)
_HEDGE = re.compile(r"\b(?:may|might|could|possibl[ey]|perhaps|suggest(?:s|ed|ing)?|unclear|uncertain|limited|inconclusive"
                    r"|further (?:studies|research|investigation)|warrant|appears?|seem(?:s|ed)?|potential(?:ly)?|likely"
                    r"|not (?:always|necessarily)|remains? (?:to be|unclear)|controversial|conflicting|mixed|partial(?:ly)?)\b", re.I)
_NEG = re.compile(r"\b(?:no|not|none|neither|nor|never|without|lack(?:ed|s|ing)?|absence|only|fail(?:ed|s)?|unable)\b", re.I)
_Q_HEDGE = re.compile(r"^\s*(?:[^?]*?:\s*)?(?:could|may|might|should|would|can)\b|\bor\b|\bworth\b|\breally\b", re.I)
_Q_NEG = re.compile(r"\b(?:not|no|without|n't)\b", re.I)


@dataclass
class LabelAnswer(Answer):
    """An Answer that is a label: `label`, `reason`, `evidence` (quotes with pages), `confidence` and the
    per-source scores that decided it (`scores`: rules / model / combined label probabilities)."""

    label: str | None = None
    reason: str = ""
    evidence: list[Citation] = field(default_factory=list)
    confidence: float | None = None
    scores: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return super().to_dict() | {"label": self.label, "reason": self.reason, "confidence": self.confidence,
                                    "evidence": [c.to_dict() for c in self.evidence], "scores": self.scores}


def label_set(spec: DomainSpec, question: str) -> tuple[str, ...] | None:
    """The labels a question asks for: effect labels for a trial effect question; yes/no/maybe for a question
    that can be answered so, in a domain whose spec declares `labels: {yesno: ...}`; None otherwise."""
    if asks_effect(question):
        return EFFECT_LABELS
    conf = (spec.model_extra or {}).get("labels") or {}
    asked = "?" in question or re.search(r"\banswer (?:with )?yes or no\b", question, re.I)
    if "yesno" in conf and asked and not _WH.search(question.split(":")[-1]):
        return YESNO
    return None


# ---- rule features ------------------------------------------------------------------------------------

def _relevant(doc: Document, question: str, k: int = 4) -> list[Span]:
    """The k sentences nearest the question (BM25), results-like ones (with a statistic) first among equals."""
    sents = [s for s in sentences(doc) if s.words >= 4]
    if not sents:
        return []
    scores = BM25([s.text for s in sents]).scores(question)
    ranked = sorted(range(len(sents)), key=lambda i: -(scores[i] + 0.5 * bool(P_OR_SIG.search(sents[i].text))))
    return [sents[i] for i in ranked[:k]]


P_OR_SIG = re.compile(rf"{SIG_WORD.pattern}|\b[Pp]\s*[<=>≤≥]", re.I)
_Q_DIR_WORDS = re.compile(r"\b(?:increase|decrease|reduce|improve|higher|lower|more|less|better|worse|risk|predict|associated)\w*", re.I)


# Cue words counted in the document's result statements (log-scaled): what the calibration weighs.
CUES = {
    "c_not": r"\b(?:not|no|none|neither|nor|never|without)\b", "c_only": r"\bonly\b",
    "c_contrast": r"\b(?:however|although|but|whereas|despite|nevertheless)\b",
    "c_similar": r"\b(?:similar|comparable|equivalent|unchanged|independent(?:ly)?)\b",
    "c_more": rf"\b(?:{UP_WORDS})\b", "c_less": rf"\b(?:{DOWN_WORDS})\b",
    "c_assoc": r"\b(?:associated|correlated|related|predict\w*|risk factors?|odds ratio|hazard ratio)\b",
    "c_improve": r"\b(?:improv\w+|effective|benefit\w*|success\w*|better|safe|feasible|accurate)\b",
    "c_worse": r"\b(?:wors\w+|poor(?:er)?|fail\w*|complications?|adverse|limited|lack\w*)\b",
    "c_pvalue": r"\b[Pp]\s*[<=>≤≥]", "c_percent": r"\d\s*%",
}
_CUES = {k: re.compile(v, re.I) for k, v in CUES.items()}


def _results_text(doc: Document) -> str:
    """The result statements: the results section (a 'RESULTS' heading or the last paragraph of an abstract-only
    document), else the sentences that state a statistic."""
    sec = next((s for s in doc.sections if s.kind.startswith("results")), None)
    if sec is not None:
        return squash(doc.section_text(sec))
    paras = [p for p in doc.text.split("\n\n") if p.strip()]
    if 1 < len(paras) <= 8:
        return squash(paras[-1])
    return " ".join(squash(s.text) for s in sentences(doc) if P_OR_SIG.search(s.text))


def rule_features(doc: Document, question: str) -> dict[str, float]:
    """What the rules read off the document for a yes/no/maybe question (each scaled to about 0-1): significance
    and its absence overall, in the result statements and in the sentences nearest the question; hedging;
    negation; whether the reported direction agrees with the question's; the question's own hedging."""
    text = squash(doc.text)
    res = _results_text(doc)
    rel = [squash(s.text) for s in _relevant(doc, question)]
    joined = " ".join(rel)

    def share(t: str) -> tuple[int, int]:
        sig = [s for _, s in p_significance(t)] + [True] * len(SIG_WORD.findall(t))
        n_sig = sum(sig)
        return n_sig, len(sig) - n_sig + len(NO_DIFF.findall(t))

    n_sig, n_ns = share(text)
    r_sig, r_ns = share(res)
    rel_sig = [_clause_significance(s, question) for s in rel]
    agree = disagree = 0
    q_dir = direction(question, 0)
    for s in rel if q_dir else []:
        d = direction(s, 0)
        if d and significance(s) is not False:
            agree += d[0] == q_dir[0]
            disagree += d[0] != q_dir[0]
    words = max(len(res.split()), 1)
    f = {"sig": min(n_sig, 8) / 8, "ns": min(n_ns, 8) / 8,
         "sig_share": n_sig / (n_sig + n_ns) if n_sig + n_ns else 0.5,
         "res_sig_share": r_sig / (r_sig + r_ns) if r_sig + r_ns else 0.5, "res_ns": min(r_ns, 4) / 4,
         "rel_sig": sum(x is True for x in rel_sig) / max(len(rel), 1), "rel_ns": sum(x is False for x in rel_sig) / max(len(rel), 1),
         "hedge": min(len(_HEDGE.findall(joined)), 4) / 4, "hedge_end": min(len(_HEDGE.findall(squash(doc.text[-1500:]))), 4) / 4,
         "neg": min(len(_NEG.findall(joined)), 6) / 6,
         "q_hedge": float(bool(_Q_HEDGE.search(question))), "q_neg": float(bool(_Q_NEG.search(question))),
         "q_dir": float(bool(_Q_DIR_WORDS.search(question))), "agree": min(agree, 3) / 3, "disagree": min(disagree, 3) / 3}
    f |= {k: math.log1p(100 * len(rx.findall(res)) / words) / 3 for k, rx in _CUES.items()}
    f["stated"] = _stated(question, rel[0]) if rel else 0.0
    f["top_sig"] = {True: 1.0, False: -1.0, None: 0.0}[rel_sig[0]] if rel else 0.0
    return f


_GENERIC_Q = re.compile(r"\banswer (?:with )?yes or no\b|\b(?:significant(?:ly)?|associat\w*|effect\w*|difference\w*|related|relationship"
                        r"|yes|no|maybe)\b", re.I)


def _clause_significance(sentence: str, question: str) -> bool | None:
    """Significance stated by the sentence's clause nearest the question (most of its words): its words or p-values,
    else its effect estimate's CI; the whole sentence when the clause says nothing ('a significant increase in
    retrospective studies and not in prospective studies (RR 1.27; 95% CI 0.77-2.10)')."""
    topic = _GENERIC_Q.sub(" ", question)  # what the question is about, not how it asks
    best = max(clauses(sentence), key=lambda c: outcome_overlap(c[1], topic))[1]
    sig = significance(best)
    if sig is None:
        est = estimates(best)
        sig = est[0].significant() if est else None
    return significance(sentence) if sig is None else sig


_QWORDS = re.compile(r"[a-z][a-z-]{3,}")
_Q_STOP = {"does", "did", "were", "was", "have", "with", "that", "this", "there", "their", "from", "than", "they", "what", "which",
           "study", "patients", "analysis"}


def _stated(question: str, sentence: str) -> float:
    """+1 when the sentence holds at least 90% of the question's content words (by their first 5 letters) and no
    statistic (a plain statement of what is asked), -1 when it is such a statement negated, 0 otherwise."""
    words = {w[:5] for w in _QWORDS.findall(question.lower()) if w not in _Q_STOP}
    have = {w[:5] for w in _QWORDS.findall(sentence.lower())}
    if len(words) < 2 or len(words & have) < 0.9 * len(words) or P_OR_SIG.search(sentence) or NO_DIFF.search(sentence):
        return 0.0
    return -1.0 if _NEG.search(sentence) and not _NEG.search(question) else 1.0


def rule_vote(f: dict[str, float]) -> dict[str, float]:
    """The rules' label without calibration: where one sentence states what the question asks (most of its content
    words) without any statistic, yes if it says so affirmatively, no if negated ('Analysis was by intention to
    treat.'); otherwise yes when the significance statements (words and p-values) of the document and of the
    sentences nearest the question report a significant result more than its
    absence, no when less. The rules do
    not say maybe (hedged wording did not separate maybe from yes/no on the dev set: RESULTS.md)."""
    if f.get("stated") and not (f["rel_sig"] or f["rel_ns"]):  # a plain statement of what is asked, no statistic near it
        return _softmax({"yes": 2.0 * f["stated"], "no": -2.0 * f["stated"], "maybe": -3.0})
    lean = f["sig_share"] - 0.5 + 0.5 * (f["rel_sig"] - f["rel_ns"])
    return _softmax({"yes": 6.0 * lean + 0.01, "no": 0.0, "maybe": -3.0})


def _softmax(z: dict[str, float]) -> dict[str, float]:
    m = max(z.values())
    e = {k: math.exp(v - m) for k, v in z.items()}
    tot = sum(e.values())
    return {k: v / tot for k, v in e.items()}


def combine(features: dict[str, float], model: dict[str, float] | None, weights: dict[str, Any] | None,
            labels: tuple[str, ...]) -> dict[str, float]:
    """Label probabilities: the calibrated logistic model over rule features (and the model's centred label
    log-probs, when it read the document); the uncalibrated rule vote without weights."""
    if not weights:
        return rule_vote(features) if labels == YESNO else {}
    x = dict(features) | {"rule_logit": 6.0 * (features["sig_share"] - 0.5)}
    if model:
        mean = sum(model.values()) / len(model)
        x |= {f"lp_{k}": v - mean for k, v in model.items()}
    z = {lab: float(weights.get("bias", {}).get(lab, 0.0)) + sum(w * x.get(name, 0.0) for name, w in weights.get(lab, {}).items())
         for lab in labels}
    return _softmax(z)


# ---- the model as a reader --------------------------------------------------------------------------

LABEL_WORDS = {"yes": ("Yes", "yes"), "no": ("No", "no"), "maybe": ("Maybe", "maybe")}


class ModelReader:
    """The document prefilled once (system + document, up to the per-question task); each question's label
    log-probabilities are then scored after it: log p(label | document, question), summed over the label's tokens."""

    def __init__(self, engine, doc: Document, spec: DomainSpec, facts: list, settings):
        from m3analyst.prompting import DEFAULT_CONTEXT, TASK_SENTINEL, build_prompt

        self.engine = engine
        s = settings.model_copy(deep=True)
        s.memo.reserve = max(s.memo.reserve, 96)
        built = build_prompt(doc, spec, facts, s, engine.count_tokens, engine.context_length or DEFAULT_CONTEXT)
        prefix, self.tail = engine.render_chat(built.messages()).split(TASK_SENTINEL, 1)
        self.session = engine.prefill(prefix, reserve=256)

    def _logprobs(self, text: str, continuation: str = ""):
        """Log-probs after `text` (+ `continuation`), read from ONE forward over them past the prefilled document;
        the cache is cut back to the document after. Returns (log-probs of the next token after `text`, the summed
        log-prob of `continuation`'s tokens)."""
        import torch

        eng, sess = self.engine, self.session
        head = eng.tokenizer(text, add_special_tokens=False)["input_ids"]
        tail = eng.tokenizer(continuation, add_special_tokens=False)["input_ids"] if continuation else []
        ctx = eng._context(sess.cache)
        try:
            with torch.inference_mode():
                logits = eng._forward(list(head) + list(tail), sess.cache, ctx, all_logits=bool(tail))
        finally:
            sess.cache.truncate(sess.n_tokens)
        lp = torch.log_softmax(logits, -1)
        first = lp[len(head) - 1] if tail else lp[-1]
        total = sum(float(lp[len(head) - 1 + k, t]) for k, t in enumerate(tail))
        return first, total

    def scores(self, question: str, labels: tuple[str, ...]) -> dict[str, float]:
        """log p(label | document, question). Labels whose words start with distinct tokens (yes / no / maybe) are
        read from one forward (the next-token distribution); others are scored one forward each."""
        task = f"Question: {question}\nAnswer with one of: {', '.join(labels)}." + self.tail
        tok = self.engine.tokenizer
        words = {lab: LABEL_WORDS.get(lab, (lab[:1].upper() + lab[1:],)) for lab in labels}
        firsts = {lab: [tok(w, add_special_tokens=False)["input_ids"][0] for w in ws] for lab, ws in words.items()}
        if len({f[0] for f in firsts.values()}) == len(labels):
            nxt, _ = self._logprobs(task)
            return {lab: float(_logsumexp([float(nxt[t]) for t in ids])) for lab, ids in firsts.items()}
        return {lab: self._logprobs(task, ws[0])[1] for lab, ws in words.items()}


def _logsumexp(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


# ---- answers -----------------------------------------------------------------------------------------

def _yesno_evidence(doc: Document, question: str) -> list[Span]:
    rel = _relevant(doc, question, k=6)
    cued = [s for s in rel if significance(squash(s.text)) is not None]
    return (cued or rel)[:2]


def _reason(label: str, f: dict[str, float], source: str) -> str:
    parts = []
    if f.get("stated") and not (f["rel_sig"] or f["rel_ns"]):
        parts.append("a sentence states what is asked" + (", negated" if f["stated"] < 0 else ""))
    if f["rel_sig"]:
        parts.append("the sentences on the question report significant findings")
    if f["rel_ns"]:
        parts.append("some state no significant difference")
    if f["hedge"] or f["q_hedge"]:
        parts.append("the wording is hedged")
    if f["disagree"] > f["agree"]:
        parts.append("the reported direction is opposite to the question's")
    basis = "; ".join(parts) or "no sentence states a clear result"
    return f"{label.capitalize()}: {basis} (read by {source})."


def answer_yesno(doc: Document, question: str, weights: dict | None, reader: ModelReader | None) -> LabelAnswer:
    f = rule_features(doc, question)
    model = reader.scores(question, YESNO) if reader else None
    rules_p = combine(f, None, weights.get("rules") if weights else None, YESNO)
    both_p = combine(f, model, weights.get("combined") if weights and model else None, YESNO) if model else rules_p
    model_p = _softmax(model) if model else None
    probs = both_p
    label = max(probs, key=probs.get)
    source = "rules+model" if model else "rules"
    ev = _yesno_evidence(doc, question)
    cites = [Citation.of_span(doc, s.start, s.end) for s in ev]
    quotes = " ".join(f"\u201c{c.quote}\u201d [p.{c.page}]" for c in cites)
    return LabelAnswer(f"{label} \u2014 {_reason(label, f, source)} {quotes}".strip(), None, sorted({c.page for c in cites}),
                       source, label=label, reason=_reason(label, f, source), evidence=cites,
                       confidence=round(probs[label], 3),
                       scores={"rules": rules_p, "model": model_p, "model_lp": model, "combined": both_p, "features": f})


def answer_effect_label(doc: Document, question: str, reader: ModelReader | None) -> LabelAnswer | None:
    """An effect question: the rules' reading of the reporting sentence; the model's label scores beside it (the
    model decides only where the rules find no sentence that says)."""
    got = read_candidates(doc, question)
    model = reader.scores(question, EFFECT_LABELS) if reader else None
    model_p = _softmax(model) if model else None
    if got:
        _, s, r = got[0]
        label, reason, cites, conf = r.label, f"{r.label}: the reporting sentence {r.reason}.", [Citation.of_span(doc, s.start, s.end)], 0.8
        source = "rules"
    elif model_p:
        label = max(model_p, key=model_p.get)
        reason, cites, conf, source = f"{label}: no sentence states it clearly; the model's reading.", [], model_p[label], "model"
    else:  # nothing reports a significant effect on this outcome: that is what the paper shows, said with low confidence
        label, cites, conf, source = EFFECT_LABELS[2], [], 0.34, "rules"
        reason = f"{label}: no sentence of the paper reports a significant difference in this outcome."
    quotes = " ".join(f"\u201c{c.quote}\u201d [p.{c.page}]" for c in cites)
    rules_p = {lab: float(lab == label) for lab in EFFECT_LABELS} if source == "rules" else None
    return LabelAnswer(f"{label} \u2014 {reason} {quotes}".strip(), None, sorted({c.page for c in cites}), source,
                       label=label, reason=reason, evidence=cites, confidence=round(conf, 3),
                       scores={"rules": rules_p, "model": model_p, "combined": {lab: float(lab == label) for lab in EFFECT_LABELS}})


def answer_labels(doc: Document, spec: DomainSpec, facts: list, questions: list[str], out: list, settings,
                  engine=None) -> None:
    """Fill `out[i]` (None so far) for every label question: rules, and the model as a reader when an engine is
    given (one prefill of the document shared by all of them)."""
    todo = [(i, labs) for i, q in enumerate(questions) if out[i] is None and (labs := label_set(spec, q))]
    if not todo:
        return
    reader = ModelReader(engine, doc, spec, facts, settings) if engine is not None else None
    weights = (spec.model_extra or {}).get("labels", {}).get("yesno", {}).get("weights")
    for i, labs in todo:
        q = questions[i]
        out[i] = answer_effect_label(doc, q, reader) if labs == EFFECT_LABELS else answer_yesno(doc, q, weights, reader)


__all__ = ["LabelAnswer", "ModelReader", "YESNO", "answer_labels", "combine", "label_set", "rule_features", "rule_vote"]
