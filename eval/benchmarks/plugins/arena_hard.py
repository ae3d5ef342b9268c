"""Arena-Hard-Auto v0.1 as a suite benchmark: two games per question against the baseline's answers,
Bradley-Terry score with a bootstrap CI (:mod:`eval.benchmarks.arena_hard`); several models evaluated
together get the official CI pooled over all of them (:meth:`ArenaHard.pool`)."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from eval import generate as G
from eval.benchmarks import arena_hard as ah
from eval.benchmarks import toy as toy_sets
from eval.benchmarks import coverage, write_json
from eval.benchmarks.base import (Benchmark, BenchmarkResult, Column, Target, clean, files_fingerprint, fmt, plain,
                                  score_cell, slug)
from eval.benchmarks.sources import ensure_files

log = logging.getLogger(__name__)


class ArenaHard(Benchmark):
    name = "arena_hard"
    order = 20
    judged = True
    files = True
    uses_reference = True  # world=toy: the reference model answers the baseline
    headline = ("score",)

    @classmethod
    def config_problems(cls, cfg) -> list[str]:
        ci = cfg.eval.arena_hard.get("ci", "auto")
        if ci not in ("auto", "per_model"):
            return [f"eval.arena_hard.ci={ci}: choose auto (pooled over the models evaluated together) or per_model"]
        return []

    def token_counter(self) -> str:
        kind = self.suite.ec.arena_hard.get("token_counter", "auto")
        return ("model" if self.suite.toy else "tiktoken") if kind == "auto" else kind

    def load(self) -> tuple[list[dict], dict, ah.ArenaJudgeConfig, str]:
        """(questions, baseline answers, judge config, a key of the question set)."""
        s = self.suite
        bc = s.ec.arena_hard
        if s.toy:
            ref = s.reference_target()
            name = f"toy_{slug(ref.name)}"

            def build(out: Path) -> None:
                count = None
                if self.token_counter() == "model":
                    tok = ref.model_and_tokenizer(s.device)[1]
                    count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
                toy_sets.build_arena_hard(out, s.task, n=bc.n_toy, seed=s.ec.toy.seed, baseline_name=name,
                                          answer=s.reference_answerer(ref), count=count)

            art = s.toy_data("arena_hard", build, reference=ref.key, max_new_tokens=s.ec.toy.max_new_tokens,
                             token_counter=self.token_counter())
            d, key, baseline = art.path, art.key, name
        else:
            d = ensure_files(bc.data_dir, plain(bc.files), what="Arena-Hard v0.1", download=s.ec.download,
                             checks=plain(bc.get("checks")), strict=bool(s.ec.get("verify_checksums", True)))
            key, baseline = files_fingerprint([d / rel for rel in bc.files]), bc.baseline
        config = ah.load_judge_config(d / "judge_config.yaml")
        config = replace(config, baseline_model=baseline)
        questions = ah.load_questions(d / "question.jsonl")
        base = ah.load_baseline_answers(d / "model_answer", baseline)
        return questions, base, config, key

    def expected(self, items) -> list:
        return [q["question_id"] for q in items[0]]

    def generate(self, target: Target, items):
        s = self.suite
        questions, _, _, data_key = items
        settings = {"max_new_tokens": s.max_new_tokens(self.name), "temperature": ah.ANSWER_TEMPERATURE,
                    "token_counter": self.token_counter()}

        def build(out: Path) -> None:
            backend = s.backend(target)
            rows = G.arena_hard_answers(backend, questions, target.name, max_new_tokens=settings["max_new_tokens"],
                                        count=G.token_counter(settings["token_counter"], backend))
            G.write_arena_hard(out, target.name, rows)

        return s.answers(target, self.name, data_key, settings, build, expected=self.expected(items))

    def _answer_file(self, target: Target, answers) -> Path:
        return answers.path / "model_answer" / f"{target.name}.jsonl"

    def judge(self, target: Target, items, answers) -> list[dict]:
        s = self.suite
        questions, base, config, _ = items
        if not s.toy and config.judge_model != s.judge.model:
            log.warning("Arena-Hard: judging with %s, not the benchmark's judge %s; scores are not leaderboard "
                        "numbers", s.judge.model, config.judge_model)
        config = replace(config, judge_model=s.judge.model)
        forms = s.forms()
        if forms is not None:
            forms.add_arena(config)
        answer_file = self._answer_file(target, answers)
        model_answers = coverage.arena_answers(ah.read_answers(answer_file), questions, answer_file)
        return ah.judge_games(s.judge, config, questions, model_answers, base, model=target.name)

    def score(self, target: Target, items, answers, judgments) -> BenchmarkResult:
        s = self.suite
        bc = s.ec.arena_hard
        questions, base, config, _ = items
        answer_file = self._answer_file(target, answers)
        model_answers = coverage.arena_answers(ah.read_answers(answer_file), questions, answer_file)
        coverage.arena_judgments(judgments, questions, s.out(target, self.name) / "judgments.jsonl", None)
        sc = ah.score_judgments(judgments, {target.name: model_answers}, baseline=config.baseline_model,
                                n_rounds=int(bc.n_bootstrap))[target.name]
        scores = {"score": sc["score"], "score_ci_low": sc["ci_lower"], "score_ci_high": sc["ci_upper"],
                  "ci_low": sc["ci_lower"], "ci_high": sc["ci_upper"], "elo": sc["elo"], "elo_ci_low": sc["elo_lower"],
                  "elo_ci_high": sc["elo_upper"], "n_battles": sc["n_battles"], "wins": sc["wins"],
                  "losses": sc["losses"], "ties": sc["ties"], "n_games": sc["n_games"],
                  "n_games_dropped": sc["n_games_dropped"], "avg_tokens": sc["avg_tokens"], "ci_n_models": 1}
        d = s.out(target, self.name)
        ah.write_judgments(d / "judgments.jsonl", judgments)
        write_json(d / "scores.json", sc)
        clusters = {q["question_id"]: q.get("cluster") for q in questions}
        table = [{"question_id": j["question_id"], "cluster": clusters.get(j["question_id"]),
                  "game1 (A=baseline)": j["games"][0].get("score"),
                  "game2 (A=model)": j["games"][1].get("score") if len(j["games"]) > 1 else None,
                  "answer": model_answers[j["question_id"]]["choices"][0]["turns"][0]["content"],
                  "baseline": base[j["question_id"]]["choices"][0]["turns"][0]["content"]} for j in judgments]
        details = {"answers": str(answer_file), "judgments": str(d / "judgments.jsonl"), "judge": s.judge.model,
                   "baseline": config.baseline_model, "n_bootstrap": int(bc.n_bootstrap), "toy": s.toy,
                   "ci": "per-model bootstrap (pool_arena_hard pools several models, as arena-hard-auto does)"}
        return BenchmarkResult(self.name, clean(scores), details, table)

    @classmethod
    def pool(cls, results: dict[str, BenchmarkResult]) -> None:
        """Arena-Hard's official CI for models evaluated together (label -> result): arena-hard-auto's
        ``show_result.py`` fits and bootstraps the battles of every model at once, so each model's 95%
        CI is replaced by that pooled bootstrap's (``ci_n_models``: how many were pooled; point scores
        do not change), and written next to the judgments as ``scores_pooled.json``. Judgments are
        read back from each result's files; with fewer than two models nothing changes."""
        if len(results) < 2:
            return
        baselines = {r.details["baseline"] for r in results.values()}
        rounds = {int(r.details["n_bootstrap"]) for r in results.values()}
        if len(baselines) > 1 or len(rounds) > 1:
            log.warning("Arena-Hard: different baselines %s or bootstrap rounds %s; CIs stay per-model",
                        sorted(baselines), sorted(rounds))
            return
        rows = []
        for who, r in results.items():
            rows += [dict(j, model=who) for j in coverage.arena_judgment_file(r.details["judgments"], r.details)]
        pooled = ah.score_judgments(rows, baseline=baselines.pop(), n_rounds=rounds.pop())
        for who, r in results.items():
            p = pooled[who]
            r.scores.update({"score_ci_low": p["ci_lower"], "score_ci_high": p["ci_upper"], "ci_low": p["ci_lower"],
                             "ci_high": p["ci_upper"], "elo_ci_low": p["elo_lower"], "elo_ci_high": p["elo_upper"],
                             "ci_n_models": len(results)})
            r.scores = clean(r.scores)
            r.details["ci"] = f"official bootstrap pooled over {len(results)} models: {', '.join(results)}"
            write_json(Path(r.details["judgments"]).parent / "scores_pooled.json", {**p, "pooled_with": list(results)})

    @classmethod
    def ci_label(cls, rows) -> str:
        """Which 95% CI the cells show: the official bootstrap pooled over the models evaluated
        together, or each model's own (``ci_n_models``: how many were pooled)."""
        ns = {s.get(cls.prefix + "ci_n_models") for _, s in rows if cls.prefix + "score" in s}
        ns.discard(None)
        if not ns or ns == {1}:
            return "95% CI per-model"
        return f"95% CI pooled over {max(ns):g} models" if len(ns) == 1 else "95% CI pooled (see details)"

    @classmethod
    def columns(cls, rows) -> list[Column]:
        p = cls.prefix
        cell = score_cell(p + "score", ".1f",
                          lambda s: f"[{fmt(s.get(p + 'score_ci_low'), '.1f')}, {fmt(s.get(p + 'score_ci_high'), '.1f')}]")
        return [Column(f"Arena-Hard (%) [{cls.ci_label(rows)}]", cell)]
