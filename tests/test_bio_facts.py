"""Bio 'Study at a glance' facts: arms (intervention / comparator), design and sample size, each with its page."""

from __future__ import annotations

import pytest

from m3analyst.domains import extract_facts
from m3analyst.domains.bio.extract import parse_arms, parse_count
from m3analyst.domains.spec import load_domain
from m3analyst.ingest.model import Document, Metadata


def _facts(pages: list[str], title: str | None = None) -> dict:
    doc = Document.from_pages(pages, metadata=Metadata(title=title) if title else Metadata())
    return {f.name: f for f in extract_facts(doc, load_domain("bio"))}


# ---- arm parser --------------------------------------------------------------------------------------

ARMS = [
    ("Adults were randomly assigned (1:1) to receive oral vitamin D 1000 IU daily or a matching placebo.",
     "oral vitamin D 1000 IU daily", ("matching placebo",)),
    ("Children were randomised into three groups receiving honey, dextromethorphan and no treatment, respectively.",
     "honey", ("dextromethorphan", "no treatment")),
    ("They received either acupuncture (Group A) or sham acupuncture (Group B) twice weekly.",
     "acupuncture", ("sham acupuncture twice weekly",)),
    ("Patients were randomized to usual care (n = 40) or a nurse-led telephone follow-up (n = 41).",
     "nurse-led telephone follow-up", ("usual care",)),  # the control is never the intervention, even when named first
    ("The two arms were (i) a text-message reminder service and (ii) a waiting-list control, with equal allocation.",
     "text-message reminder service", ("waiting-list control",)),
    ("Fibrin glue was used in 30 wounds (glue group), and nylon sutures were used in 28 wounds (suture group).",
     "Fibrin glue", ("nylon sutures",)),
    ("119 were randomly allocated to receive simvastatin and 116 to receive atorvastatin.",
     "simvastatin", ("atorvastatin",)),
]


@pytest.mark.parametrize("sentence,intervention,comparators", ARMS)
def test_parse_arms_reads_the_arms_of_an_allocation_sentence(sentence, intervention, comparators):
    arms = parse_arms(sentence)
    assert arms is not None
    assert (arms.intervention, arms.comparators) == (intervention, comparators)


@pytest.mark.parametrize("sentence", [
    "Sixty patients were randomized into 3 equal groups of different flow rates.",  # groups, but no arm named
    "Form teachers are usually assigned to a form group in year 7 and stay with that group until year 11.",  # no randomisation
    "Each new patient was assigned to one of the nurses or physicians at the clinic.",  # staff, not arms: no randomisation
    "Participants were randomly allocated to the intervention and control arms.",  # arms named only generically
    "Pupils were randomly allocated to a school class and followed up for one year.",  # 'and' joins two clauses
])
def test_parse_arms_gives_nothing_rather_than_a_guess(sentence):
    assert parse_arms(sentence) is None


def test_arm_facts_cite_the_allocation_sentence_and_fall_back_to_quoting_it():
    abstract = "Abstract\n\nBackground: In previous trials, smokers were randomly assigned to counselling or no support."
    methods = ("Methods\n\nWe recruited 412 smokers from general practices. "
               "Participants were randomly assigned to receive a smartphone quit app or a printed leaflet.")
    facts = _facts([abstract, methods])  # the other trials' arms come first but are not this paper's
    assert facts["intervention"].value == "smartphone quit app" and facts["intervention"].page == 2
    assert facts["comparator"].value == "printed leaflet" and facts["comparator"].page == 2
    assert facts["comparator"].source_text.startswith("Participants were randomly assigned")
    # no parsable arms: the intervention quotes the allocation sentence; no comparator is made up
    vague = _facts(["Methods\n\nA total of 80 patients were allocated to receive the programme as described elsewhere."])
    assert vague["intervention"].value.startswith("A total of 80 patients were allocated")
    assert "comparator" not in vague


# ---- design --------------------------------------------------------------------------------------------

def test_design_prefers_the_papers_own_statement_over_other_studies():
    abstract = ("Abstract\n\nBackground: Randomised controlled trials of coaching have shown benefits. "
                "Methods: This single-group pilot study enrolled 22 relatives of cancer survivors. "
                "Conclusions: A large randomised controlled trial is required to confirm these results.")
    facts = _facts([abstract])
    assert facts["design"].value == "single-group pilot study"
    assert "random" not in facts["design"].value.lower()
    assert facts["design"].page == 1 and "single-group pilot study" in facts["design"].source_text


def test_design_keeps_the_label_and_the_papers_words():
    page = ("Methods\n\nIt is a prospective double-blinded randomized study conducted on 65 children. "
            "Other designs, such as a retrospective cohort study, were considered.")
    assert _facts([page])["design"].value == "prospective double-blinded randomized study"
    page2 = "Methods\n\nIn a blind and prospective study, 300 patients were randomly divided into three equal groups."
    assert _facts([page2])["design"].value == "randomised controlled trial (blind and prospective study)"


def test_design_from_the_title_when_it_states_one():
    page = "A longitudinal uncontrolled study of gait in patients receiving levodopa\n\nWe followed 31 patients for a year."
    facts = _facts([page], title="A longitudinal uncontrolled study of gait in patients receiving levodopa")
    assert facts["design"].value == "longitudinal uncontrolled study" and facts["design"].page == 1


# ---- sample size ---------------------------------------------------------------------------------------

def test_sample_size_prefers_the_number_randomised_over_analysed_subsets():
    abstract = ("Abstract\n\nMethods: 250 students were to be enrolled to detect a 10% difference with 80% power. "
                "Results: Of those randomised, 206 participants were included in the final analysis. "
                "Methods: In a community trial, 225 students were enrolled at two universities.")
    results = "Results\n\nHence, 198 students were randomized into two groups."
    f = _facts([abstract, results])["sample_size"]
    # who entered: not the power calculation's number, the analysed subset or the body's later counts
    assert f.value == 225 and f.page == 1 and "225 students were enrolled" in f.source_text


def test_sample_size_reads_number_words_and_skips_study_counts():
    assert parse_count("Sixty") == 60 and parse_count("Twenty-two") == 22 and parse_count("4,613") == 4613
    assert parse_count("12 092") == 12092 and parse_count("several") is None
    page = "Abstract\n\nMethods: Sixty patients with cirrhosis underwent paracentesis of 8 L and were randomized into 3 groups."
    assert _facts([page])["sample_size"].value == 60
    meta = "Abstract\n\nResults: We included 31 studies with data from 4179 patients."
    assert _facts([meta])["sample_size"].value == 4179


# ---- primary outcome -----------------------------------------------------------------------------------

def test_primary_outcome_states_what_the_outcome_is():
    methods = ("Methods\n\nAt follow-up, calls elicited responses to the primary outcome measure (days of exercise per week). "
               "The primary end point was taken as relapse within 12 months of surgery.")
    f = _facts([methods])["primary_outcome"]
    assert f.value == "relapse within 12 months of surgery"  # the statement wins over the earlier mention
    assert f.source_text.startswith("The primary end point was") and f.page == 1
    mention = _facts(["Methods\n\nCalls elicited responses to the primary outcome measure (days of exercise per week)."])
    assert mention["primary_outcome"].value == "days of exercise per week"
    cond = _facts(["Methods\n\nSince the primary outcome is binary, chi-square tests were used."])
    assert cond["primary_outcome"].value.startswith("Since the primary outcome is binary")  # no outcome named: the sentence


# ---- a real paper, read in place ----------------------------------------------------------------------

def test_real_trial_facts(corpus):
    from m3analyst.ingest import load_document

    doc = load_document(corpus / "bio" / "trials_txt" / "PMC3687883.txt")  # cetirizine vs ondansetron vs placebo
    facts = {f.name: f for f in extract_facts(doc, load_domain("bio"))}
    assert facts["intervention"].value == "cetirizine"
    assert facts["comparator"].value == "ondansetron; placebo"
    assert facts["sample_size"].value == 300
    assert "randomised" in facts["design"].value and "prospective" in facts["design"].value
    for name in ("intervention", "comparator", "sample_size", "design"):
        f = facts[name]
        assert doc.locate(f.source_text, page=f.page), name  # the cited sentence is on the cited page
