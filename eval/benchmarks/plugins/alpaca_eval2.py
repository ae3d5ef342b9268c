"""AlpacaEval 2 as a suite benchmark: the reference outputs (world=toy: the reference model's answers to
a toy set), the model's outputs, the annotator (log-probabilities or verdicts) and the ``alpaca_eval``
package's win rate and length-controlled win rate (:mod:`eval.benchmarks.alpaca_eval2`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from eval import generate as G
from eval.benchmarks import alpaca_eval2 as ae2
from eval.benchmarks import toy as toy_sets
from eval.benchmarks import coverage, write_json
from eval.benchmarks.base import Benchmark, BenchmarkResult, Column, Target, clean, files_fingerprint, fmt, num, plain, slug
from eval.benchmarks.sources import ensure_files

log = logging.getLogger(__name__)


class AlpacaEval2(Benchmark):
    name = "alpaca_eval2"
    order = 10
    judged = True
    files = True
    uses_reference = True  # world=toy: the reference model answers the reference outputs
    # LC exists only with its GLM tables (length_controlled_v1)
    headline = ("lc_win_rate", "win_rate")

    @classmethod
    def config_problems(cls, cfg) -> list[str]:
        annotation = cfg.eval.alpaca_eval2.annotation
        if annotation not in ("logprobs", "verdicts"):
            return [f"eval.alpaca_eval2.annotation={annotation}: choose logprobs or verdicts"]
        return []

    def load(self) -> tuple[list[dict], str, Optional[Path]]:
        """(reference outputs, a key of the question set, folder of the LC tables or None)."""
        s = self.suite
        bc = s.ec.alpaca_eval2
        if s.toy:
            ref = s.reference_target()
            name = f"toy_{slug(ref.name)}"
            art = s.toy_data("alpaca_eval2", lambda out: toy_sets.build_alpaca_eval(
                out, s.task, n=bc.n_toy, seed=s.ec.toy.seed, reference_name=name,
                answer=s.reference_answerer(ref)), reference=ref.key, max_new_tokens=s.ec.toy.max_new_tokens)
            path = art.path / name / "model_outputs.json"
            return ae2.load_reference_outputs(path), art.key, None
        d = ensure_files(bc.data_dir, plain(bc.files), what="AlpacaEval 2", download=s.ec.download,
                         checks=plain(bc.get("checks")), strict=bool(s.ec.get("verify_checksums", True)))
        glm_dir = Path(bc.get("glm_dir") or bc.data_dir)
        if bc.get("glm_files"):
            ensure_files(glm_dir, plain(bc.glm_files), what="AlpacaEval 2 LC tables (length_controlled_v1)",
                         download=s.ec.download, required=False)
        refs = ae2.load_reference_outputs(d)
        return refs, files_fingerprint([d / rel for rel in bc.files]), glm_dir

    def expected(self, items) -> list:
        return [r["instruction"] for r in items[0]]

    def generate(self, target: Target, items):
        s = self.suite
        reference, data_key, _ = items
        settings = {"max_new_tokens": s.max_new_tokens(self.name), "temperature": float(s.ec.alpaca_eval2.temperature)}

        def build(out: Path) -> None:
            rows = G.alpaca_eval_outputs(s.backend(target), reference, target.name, **settings)
            G.write_alpaca_eval(out, rows)

        return s.answers(target, self.name, data_key, settings, build, expected=self.expected(items))

    def judge(self, target: Target, items, answers) -> list[dict]:
        s = self.suite
        bc = s.ec.alpaca_eval2
        reference = items[0]
        outputs = coverage.alpaca_outputs(ae2.read_model_outputs(answers.path / "model_outputs.json"), reference,
                                          answers.path / "model_outputs.json")
        forms = s.forms()
        if bc.annotation == "logprobs":
            spec = ae2.load_annotator()
            if forms is not None:
                forms.add_alpaca_annotator(spec)
            return ae2.annotate(outputs, reference, s.judge, spec=spec, generator=target.name)
        if bc.annotation == "verdicts":
            if forms is not None:
                forms.add_pairwise(ae2.PAIRWISE_PROMPT.read_text(encoding="utf-8"))
            return ae2.annotate_with_verdicts(outputs, reference, s.judge, generator=target.name)
        raise ValueError(f"eval.alpaca_eval2.annotation must be 'logprobs' or 'verdicts', got {bc.annotation!r}")

    def score(self, target: Target, items, answers, rows) -> BenchmarkResult:
        s = self.suite
        bc = s.ec.alpaca_eval2
        reference, _, glm_dir = items
        outputs = coverage.alpaca_outputs(ae2.read_model_outputs(answers.path / "model_outputs.json"), reference,
                                          answers.path / "model_outputs.json")
        coverage.alpaca_annotations(rows, reference, s.out(target, self.name) / "annotations.json")
        lc_error = None
        try:
            sc = ae2.score_annotations(rows, lc=bc.lc, glm_data_dir=glm_dir, model_outputs=outputs)
        except ae2.DataFormatError:  # a GLM table of the wrong format: the user must replace it
            raise
        except ValueError as e:  # the GLM cannot be fitted, e.g. every length difference equal (NaN features)
            lc_error = f"{type(e).__name__}: {str(e).splitlines()[0]}"
            log.warning("AlpacaEval LC could not be computed (%s); win rate only", lc_error)
            sc = ae2.score_annotations(rows, lc=None, glm_data_dir=glm_dir, model_outputs=outputs)
        scores = ae2.flat_scores(sc)
        d = s.out(target, self.name)
        ae2.write_annotations(d / "annotations.json", rows)
        write_json(d / "scores.json", sc)
        table = [{"instruction": r["instruction"], "reference": r["output_1"], "output": r["output_2"],
                  "preference": num(r["preference"])} for r in rows]
        details = {"answers": str(answers.path / "model_outputs.json"), "annotations": str(d / "annotations.json"),
                   "annotator": sc["annotator"], "lc_variant": sc["lc_variant"], "lc_error": lc_error,
                   "judge": s.judge.model,
                   "reference": reference[0].get("generator") if reference else None, "toy": s.toy}
        return BenchmarkResult(self.name, clean(scores), details, table)

    @classmethod
    def columns(cls, rows) -> list[Column]:
        """LC = the leaderboard's ``length_controlled_v1`` only; the minimal variant in its own column."""
        ae = cls.prefix
        has = lambda key: any(key in s for _, s in rows)  # noqa: E731
        cols = []
        if has(ae + "lc_win_rate"):
            cols.append(Column("AlpacaEval 2 LC (%)", lambda s: fmt(s.get(ae + "lc_win_rate"), ".1f")))
        if has(ae + "lc_minimal_win_rate"):
            cols.append(Column("AlpacaEval 2 LC-minimal (%) (length_controlled_minimal, not the leaderboard's LC)",
                               lambda s: fmt(s.get(ae + "lc_minimal_win_rate"), ".1f")))
        cols.append(Column("AlpacaEval 2 WR (%)", lambda s: fmt(s.get(ae + "win_rate"), ".1f")))
        return cols
