"""Reading effects off sentences (domains/bio/effects.py) and effect estimates: model-free, fast."""

from __future__ import annotations

import pytest

from m3analyst.domains.bio.effects import clauses, estimates, p_significance, read_effect, significance

DEC, INC, NSD = "significantly decreased", "significantly increased", "no significant difference"


@pytest.mark.parametrize("sentence, i, c, o, label", [
    # the failure: 'significantly lower ... than control' is a decrease, from the intervention's side
    ("Pain scores were significantly lower in the ketamine group than in the control group (P = 0.01).", "ketamine", "control",
     "pain scores", DEC),
    ("The control group had significantly higher pain scores than the ketamine group (P < 0.01).", "ketamine", "control",
     "pain scores", DEC),
    ("PHR group patients were significantly more afraid to ask questions of doctors than control group patients (21% vs. 4%, p=0.01).",
     "patient-held record (PHR)", "control", "fear of asking doctors", INC),
    ("The metformin group gained less weight (between-group difference −2.6 kg (95% CI −3.3 to −1.8), p<0.001).", "metformin",
     "placebo", "gain weight", DEC),
    ("HbA1c was more reduced in the metformin group (p<0.001).", "metformin", "placebo", "HbA1c", DEC),
    # the between-group statement outranks each arm's change from baseline
    ("A significant reduction in antibodies was seen in both groups (P < 0.001), but there was no difference between groups (P = 0.25).",
     "atorvastatin", "simvastatin", "antibodies", NSD),
    ("Lipids decreased by 7.1% from baseline (P = 0.01), but this reduction was not significant when compared to placebo (P = 0.20).",
     "pterostilbene", "placebo", "lipids", NSD),
    ("Median Tmax was achieved 4 hours earlier under fed conditions compared with fasting conditions (12 vs. 16 hours; P = 0.0062).",
     "fed conditions", "fasting conditions", "time to peak concentration (Tmax)", DEC),
    ("There was a trend (p=0.13) towards fewer severe bleeds in the fondaparinux group.", "fondaparinux", "placebo", "severe bleeds", NSD),
    ("Mean BMI change was -1.65 in the intervention group and +0.05 in the control group, p = 0.0005.", "education", "usual care",
     "BMI change", DEC),
])
def test_read_effect(sentence, i, c, o, label):
    r = read_effect(sentence, i, c, o)
    assert r is not None and r.label == label, (r, sentence)


def test_read_effect_says_nothing_without_significance():
    assert read_effect("Mortality was 12% in both arms.", "a", "b", "mortality") is None
    assert read_effect("The duration was longer than placebo (p > 0.001).", "a", "placebo", "duration") is None  # p > small says nothing


def test_p_values_and_significance_words():
    assert [s for _, s in p_significance("p = 0.03, P<0.001, p=0.13, p > 0.05, p = 0·049")] == [True, True, False, False, True]
    assert significance("no statistically significant (P>0.05) change in creatinine") is False
    assert significance("borderline significantly increased odds (p = 0.053)") is False
    assert significance("significantly increased (p = 0.02)") is True
    assert [t for _, t in clauses("A was higher (OR 2.1; 95% CI 1.1-3.0; p = 0.01); B did not differ")] == [
        "A was higher (OR 2.1; 95% CI 1.1-3.0; p = 0.01)", " B did not differ"]


def test_estimates_with_ci_and_direction():
    got = estimates("significantly increased odds (odds ratio [OR] = 2.86; 95% CI: 1.03–7.96; p = 0.04) "
                    "but not at 6 months (OR = 1.54; 95% CI: 0.56–4.23; p = 0.40); HR 0·71 (0·55 to 0·92)")
    assert [(e.kind, e.value, e.low, e.high) for e in got] == [("OR", 2.86, 1.03, 7.96), ("OR", 1.54, 0.56, 4.23), ("HR", 0.71, 0.55, 0.92)]
    assert [e.label() for e in got] == [INC, NSD, DEC]
    md = estimates("between-group difference −2.6 kg (95% CI −3.3 to −1.8), p<0.001")[0]
    assert (md.kind, md.value, md.label()) == ("MD", -2.6, DEC)
    assert estimates("The OR was 0.8")[0].significant() is None  # no CI, no p: direction only
    assert not estimates("the ratio of OR to HR was discussed")


def test_percent_changes_are_estimates_too():
    from m3analyst.domains.bio.effects import percent_changes

    got = percent_changes("There was a significant 3.6% reduction in bicarbonate versus placebo (P = 0.02); "
                          "BUN rose by 7.1% (P = 0.20).")
    assert [(e.kind, e.value, e.label()) for e in got] == [("PCT", -3.6, DEC), ("PCT", 7.1, NSD)]
    assert not percent_changes("51.2% (n = 7,230) were female")
