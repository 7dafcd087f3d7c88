"""CITATION.cff: the library and the three papers it implements, each citable (names, year, an arXiv DOI)."""

from pathlib import Path

import yaml

import probssl

CFF = Path(__file__).resolve().parents[1] / "CITATION.cff"


def test_the_library_and_each_paper_are_citable():
    cff = yaml.safe_load(CFF.read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["version"] == probssl.__version__
    titles = {r["title"]: r for r in cff["references"]}
    assert set(titles) == {
        "Probabilistic Variational Contrastive Learning",  # VCL
        "Stochastic Contrastive Learning",  # SCL
        "A Probabilistic Model behind Self-Supervised Learning",  # SimVAE
    }
    for ref in cff["references"]:
        assert isinstance(ref["year"], int) and ref["authors"]
        assert all(a.get("family-names") and a.get("given-names") for a in ref["authors"])
        (doi,) = [i["value"] for i in ref["identifiers"] if i["type"] == "doi"]
        assert doi.startswith("10.48550/arXiv.") and ref["url"].endswith(doi.removeprefix("10.48550/arXiv."))
