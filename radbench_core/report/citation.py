"""How to cite: the study radbench reproduces and radbench itself, as BibTeX for a paper.

Why in the report: a table or figure pasted into a manuscript needs both references next to it;
``citation.bib`` lands in every report folder and the HTML shows it. The radbench entry takes the
installed version, so a report cites the code that made it (CITATION.cff at the repo root agrees).
The study's title, author list (order and spelling), year and eprint are those of the BibTeX in the
study's own repository README (MohammedSB/DINOv2ForRadiology, entry ``baharoon2023general``); the
anonymised review copy in shared/study/paper.txt carries no author names.
"""

from __future__ import annotations

from importlib import metadata

STUDY_KEY = "baharoon2023dinov2radiology"
STUDY_BIBTEX = """@article{baharoon2023dinov2radiology,
  title   = {Towards General Purpose Vision Foundation Models for Medical Image Analysis:
             An Experimental Study of {DINOv2} on Radiology Benchmarks},
  author  = {Baharoon, Mohammed and Qureshi, Waseem and Ouyang, Jiahong and Xu, Yanwu and
             Aljouie, Abdulrhman and Peng, Wei},
  journal = {arXiv preprint arXiv:2312.02366},
  eprint  = {2312.02366},
  archivePrefix = {arXiv},
  year    = {2023}
}
"""


def radbench_version() -> str:
    try:
        return metadata.version("radbench")
    except metadata.PackageNotFoundError:          # a source checkout that was never installed
        return "unknown"


def radbench_bibtex(version: str | None = None) -> str:
    """radbench's own entry, at ``version`` (default: the installed one)."""
    version = version or radbench_version()
    return ("@software{radbench,\n"
            "  title   = {radbench: a pytest benchmark of vision foundation models on radiology},\n"
            "  author  = {{The radbench authors}},\n"
            f"  version = {{{version}}},\n"
            "  note    = {Reproduces and extends \\cite{" + STUDY_KEY + "}}\n"
            "}\n")


def citation_bib(version: str | None = None) -> str:
    """citation.bib: the study, then radbench."""
    return STUDY_BIBTEX + "\n" + radbench_bibtex(version)
