"""ADPA+ (Gao et al., ICLR 2025, §3.3): DCKD first, then ADPA from the DCKD student, with ŷ generated
by that student. A pipeline of two stages, not a new loss: the DCKD stage is the very artifact a
``method=dckd`` run with the same settings builds (``method.dckd``), and the second stage is ADPA's
module and recipe (``distill.methods.adpa``)."""
from __future__ import annotations

from distill.methods.adpa import ADPA, ADPAConfig


class ADPAPlus(ADPA):
    names = ("adpa_plus",)
    labels = {"adpa_plus": "ADPA+"}
    order = 40
    config = ADPAConfig  # the ADPA stage's keys; the DCKD stage's are checked in method.dckd
    paper = "Gao et al., ICLR 2025, §3.3"
    bench = False  # its training step is ADPA's

    def nested(self, m):
        return {"dckd": m.dckd}

    def start(self, pipe, m):
        """The student of the DCKD stage (``method.dckd``), trained first."""
        return pipe.distill(method_cfg=m.dckd)


METHOD = ADPAPlus()
