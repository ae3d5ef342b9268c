"""The comparison report: tables from a fixture results store, LaTeX safety, plots, W&B, Hydra callback."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import ROOT
from eval import report as R

FIXTURE = ROOT / "tests" / "fixtures" / "report"
RESULTS = FIXTURE / "results"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return R.write_report(R.load_records([RESULTS]), out)


def test_markdown_matches_the_hand_written_table(written):
    assert written["markdown"].read_bytes() == (FIXTURE / "expected.md").read_bytes()


def test_records_not_runs_are_skipped_and_reruns_replace_earlier_ones(caplog):
    recs = R.load_records([RESULTS])
    assert len(recs) == 11  # notes.json is not a run record
    dropped = []
    kept = R.dedupe(recs, dropped)
    assert dropped == ["dckd-gemma-s0 (dckd-gemma-s0-a1.json), written 2025-01-01T09:00:00, replaced by dckd-gemma-s0 "
                       "(dckd-gemma-s0-b1.json), written 2025-01-02T12:00:00 (same setup, method, hyperparameters "
                       "and seed)"]
    assert "duplicate run dropped: dckd-gemma-s0 (dckd-gemma-s0-a1.json)" in caplog.text
    assert len(kept) == 10
    dckd = [r for r in kept if r["method"] == "dckd" and r["hparams"]["alpha"] == 0.1 and r["seed"] == 0]
    assert [r["scores"]["toy/win_rate"] for r in dckd] == [66.0]  # the later run, not the one of 2025-01-01
    assert len(R.load_records([RESULTS], group="fixture")) == 11 and R.load_records([RESULTS], group="other") == []


def test_columns_are_declared_once_and_only_those_with_values_appear():
    recs = R.load_records([RESULTS])
    assert [c.key for c in R.columns_for(recs)] == ["toy/oracle_reward", "toy/win_rate", "eval/mt_bench/score"]
    bench = {"eval/alpaca_eval2/lc_win_rate": 40.1, "eval/alpaca_eval2/win_rate": 38.0, "eval/arena_hard/score": 20.0,
             "eval/arena_hard/score_ci_low": 18.0, "eval/arena_hard/score_ci_high": 22.0, "eval/mt_bench/turn1": 6.0,
             "eval/mt_bench/turn2": 5.0, "eval/mt_bench/score": 5.5, "eval/open_llm/average": 50.0,
             "eval/open_llm/arc_challenge": 45.0, "eval/open_llm/gsm8k": 30.0}
    cols = R.columns_for([{"method": "pad", "model": "gemma", "scores": bench}])
    assert [c.key for c in cols] == ["eval/alpaca_eval2/lc_win_rate", "eval/alpaca_eval2/win_rate",
                                     "eval/arena_hard/score", "eval/mt_bench/turn1", "eval/mt_bench/turn2",
                                     "eval/mt_bench/score", "eval/open_llm/arc_challenge", "eval/open_llm/gsm8k",
                                     "eval/open_llm/average"]
    assert cols[-1].header == "Open LLM average" and cols[-1].headline


def test_metric_option_selects_columns_and_rejects_unknown_keys(tmp_path):
    recs = R.load_records([RESULTS])
    paths = R.write_report(recs, tmp_path, metrics=["toy/win_rate"])
    header = paths["markdown"].read_text().splitlines()[4]
    assert header == "| Model | Method | Seeds | Win rate vs SFT (%) |"
    assert sorted(k for k in paths if k.startswith("plot/")) == [
        f"plot/{stem}_toy_win_rate.{ext}" for stem in ("methods_gemma", "methods_llama", "sensitivity_dckd_alpha")
        for ext in ("png", "svg")]
    with pytest.raises(R.ReportError, match="no values for eval/arena_hard/score; present: .*toy/win_rate"):
        R.write_report(recs, tmp_path, metrics=["eval/arena_hard/score"])


def _unescaped(pattern: str, text: str) -> list[str]:
    return re.findall(r"(?<!\\)" + pattern, text)


def test_latex_is_compile_safe(written):
    tex = written["latex"].read_text()
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 3
    for block in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", body, re.S):
        spec, rows = block
        lines = [l for l in rows.strip().splitlines()]
        assert lines[0] == r"\toprule" and lines[2] == r"\midrule" and lines[-1] == r"\bottomrule"
        for line in lines:
            if not line.startswith("\\") or line.startswith(r"\textbf"):
                assert line.endswith(r" \\") and len(_unescaped("&", line)) == len(spec) - 1, line
    depth = 0
    for ch in re.sub(r"\\[{}]", "", body):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    for line in body.splitlines():
        assert len(_unescaped(r"\$", line)) % 2 == 0, line  # math mode opened and closed on each line
        assert not _unescaped("[_%#]", re.sub(r"\$[^$]*\$", "", line)), line  # only escaped outside math
        assert line.isascii(), line  # pdflatex without extra packages
    assert r"\textbf{0.650 $\pm$ 0.014}" in body and r"Win rate vs SFT (\%)" in body
    assert r"student $\cdot$ SFT ($\pi_{\mathrm{sft}}$)" in body and r"DCKD ($\alpha=0.1$)" in body
    assert r"$\pi$\_" not in body and r"ADPA ($\gamma=1$, k=50)" in body
    assert (R.latex_escape("a_b 50% & #1 {x} ~^\\")
            == r"a\_b 50\% \& \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{}")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles(written, tmp_path):
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
                   + written["latex"].read_text() + "\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_csv_has_means_stds_and_deltas(written):
    rows = list(csv.DictReader(written["csv"].open()))
    assert len(rows) == 12
    dckd = next(r for r in rows if r["label"] == "student · DCKD (α=0.1)")
    assert dckd["hparam/alpha"] == "0.1" and dckd["seeds"] == "2"
    assert float(dckd["toy/win_rate"]) == 68.0 and abs(float(dckd["toy/win_rate std"]) - 8 ** 0.5) < 1e-6
    assert abs(float(dckd["toy/win_rate delta_dpo"]) - 6.0) < 1e-9
    assert abs(float(dckd["toy/win_rate delta_sft"]) - 18.0) < 1e-9
    assert dckd["eval/mt_bench/score"] == "" and dckd["eval/mt_bench/score n"] == "0"


def test_plots_are_png_and_svg_for_each_varying_hyperparameter(written):
    import matplotlib.image

    plots = sorted(k for k in written if k.startswith("plot/"))
    kinds = ("methods_gemma", "methods_llama", "sensitivity_dckd_alpha")
    assert plots == sorted(f"plot/{kind}_{m}.{ext}" for kind in kinds
                           for m in ("toy_oracle_reward", "toy_win_rate") for ext in ("png", "svg"))
    bars = written["plot/methods_gemma_toy_win_rate.svg"].read_text()
    assert "95% CI over seeds (Student" in bars and "one seed: no interval" in bars  # DCKD (α=0.5): one seed
    png = written["plot/sensitivity_dckd_alpha_toy_win_rate.png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h, w, _ = matplotlib.image.imread(png).shape
    assert w > 600 and h > 400
    svg = ET.parse(written["plot/sensitivity_dckd_alpha_toy_win_rate.svg"]).getroot()
    assert svg.tag.endswith("svg") and len(svg.findall(".//{http://www.w3.org/2000/svg}path")) > 20


def test_band_is_the_t_interval_over_seeds_or_the_runs_ci():
    lo, hi = R._band({"v": [66.0, 70.0], "ci": [None, None]})
    assert abs((hi - lo) / 2 - 12.7062 * 2.0) < 1e-3 and (lo + hi) / 2 == 68.0  # t(0.975, 1) · s / √n, s / √n = 2
    assert R._band({"v": [58.0], "ci": [(48.0, 68.0)]}) == (48.0, 68.0)
    assert all(math.isnan(x) for x in R._band({"v": [58.0], "ci": [None]}))  # one seed, no CI: no band
    assert R._band({"v": [99.0, 90.0], "ci": [None, None]}, (0, 100))[1] == 100  # clipped to the score's range


def test_a_reference_is_one_evaluation_whatever_the_bootstrap_seed():
    a, b = (json.loads(p.read_text()) for p in sorted(RESULTS.glob("dpo-gemma-*.json")))
    b["references"]["teacher · DPO (π_dpo)"]["toy/win_rate_ci_low"] = 61.5  # the CI's seed is the run's seed
    rows = R.build_rows([a, b], R.columns_for([a, b]))
    teacher = next(r for r in rows if r.label == "teacher · DPO (π_dpo)")
    assert teacher.values["toy/win_rate"] == [80.0] and len(teacher.seeds) == 1
    b["references"]["teacher · DPO (π_dpo)"]["toy/win_rate"] = 82.0  # another evaluation: a second sample
    rows = R.build_rows([a, b], R.columns_for([a, b]))
    assert next(r for r in rows if r.label == "teacher · DPO (π_dpo)").values["toy/win_rate"] == [80.0, 82.0]


class FakeRun:
    def __init__(self, rec: dict):
        self.name, self.id, self.group = rec["run"]["name"], rec["run"]["id"], rec["run"]["group"]
        self.created_at = rec["written"]
        self.config = {**rec["config"], "world": {"name": rec["world"]}}
        self.summary = {**rec["scores"], **{f"reference/{who}/{k}": v for who, s in rec["references"].items()
                                            for k, v in s.items()}, "_step": 3, "train/loss": 0.5}


class FakeApi:
    def __init__(self, records):
        self.records, self.calls = records, []

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        return [FakeRun(r) for r in self.records if not filters or r["run"]["group"] == filters["group"]]


def test_wandb_project_gives_the_same_table(tmp_path):
    api = FakeApi(R.load_records([RESULTS]))
    recs = R.read_wandb("team/distill-bench", api=api, group="fixture")
    assert api.calls == [("team/distill-bench", {"group": "fixture"})] and len(recs) == 11
    assert "train/loss" not in recs[0]["scores"] and set(recs[0]["references"]) == set(R.REFERENCE_ORDER)
    md = R.write_report(recs, tmp_path)["markdown"].read_text().splitlines()
    expected = (FIXTURE / "expected.md").read_text().splitlines()
    assert md[:-1] == expected[:-1]  # the last line names the dropped duplicate: here by its W&B run id
    assert md[-1].startswith("1 duplicate run dropped (the one written later is kept): dckd-gemma-s0 "
                             "(wandb:a1000000000000), written 2025-01-01T09:00:00, replaced by dckd-gemma-s0 "
                             "(wandb:b1000000000000)")


def test_cli(tmp_path, capsys):
    assert R.main([str(RESULTS), "--out", str(tmp_path / "r"), "--metric", "toy/oracle_reward"]) == 0
    assert (tmp_path / "r" / "report.md").is_file() and "report.md" in capsys.readouterr().out
    assert R.main([str(tmp_path / "nowhere" / "x")]) == 2
    assert "no such results folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert R.main([str(tmp_path / "empty")]) == 2


def _store(tmp_path: Path, group: str) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    for p in RESULTS.glob("*.json"):
        rec = json.loads(p.read_text())
        if "run" in rec:
            rec["run"]["group"] = group
        (results / p.name).write_text(json.dumps(rec, ensure_ascii=False))
    return results


def test_report_callback_writes_into_the_sweep_dir_and_logs_to_wandb(tmp_path, monkeypatch):
    sweep = tmp_path / "logs" / "multiruns" / "2025-01-02_10-00-00"
    results = _store(tmp_path, sweep.name)
    logged = {}

    class FakeWandbRun:
        def log(self, data):
            logged.update(data)

        def finish(self):
            logged["finished"] = True

    fake_wandb = types.SimpleNamespace(init=lambda **kw: logged.update(init=kw) or FakeWandbRun(),
                                       Table=lambda columns, data: ("table", columns, data),
                                       Image=lambda path: ("image", path))
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb)
    monkeypatch.setitem(sys.modules, "distill.runs", types.SimpleNamespace(wandb_offline=lambda: True))
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "paths": {"results": str(results)},
                            "logger": {"wandb": {"project": "distill-bench", "entity": None, "group": None}}})
    R.ReportCallback().on_multirun_end(config=cfg)
    md = (sweep / "report" / "report.md").read_text()
    assert md.splitlines()[0] == "# Results: 2025-01-02_10-00-00"
    assert md.splitlines()[1:] == (FIXTURE / "expected.md").read_text().splitlines()[1:]
    assert logged["init"]["mode"] == "offline" and logged["init"]["group"] == sweep.name and logged["finished"]
    kind, columns, data = logged["report/table"]
    assert kind == "table" and columns[:3] == ["model", "method", "label"] and len(data) == 12
    assert logged["report/sensitivity_dckd_alpha_toy_win_rate"] == ("image", str(sweep / "report" /
                                                                                "sensitivity_dckd_alpha_toy_win_rate.png"))


def test_report_callback_runs_at_the_end_of_a_hydra_multirun(tmp_path):
    """A tiny Hydra app whose jobs write results; the callback enabled as in conf/hydra/default.yaml."""
    app = tmp_path / "app.py"
    app.write_text(
        "import json, hydra\nfrom pathlib import Path\nfrom hydra.core.hydra_config import HydraConfig\n"
        "@hydra.main(version_base='1.3', config_path=None, config_name=None)\n"
        "def main(cfg):\n"
        "    rec = json.loads(Path(cfg.src).read_text())\n"
        "    rec['run']['group'] = Path(HydraConfig.get().sweep.dir).name\n"
        "    rec['seed'] = cfg.seed\n"
        "    Path(cfg.paths.results).mkdir(parents=True, exist_ok=True)\n"
        "    (Path(cfg.paths.results) / f'r{cfg.seed}.json').write_text(json.dumps(rec))\n"
        "main()\n")
    sweep = tmp_path / "multi" / "sw"
    proc = subprocess.run(
        [sys.executable, str(app), "-m", f"+src={RESULTS / 'dckd-gemma-s0-b1.json'}", "+seed=0,1,2",
         f"+paths.results={tmp_path / 'results'}", f"hydra.sweep.dir={sweep}", "+logger=null",
         "+hydra.callbacks.report._target_=eval.report.ReportCallback"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (sweep / "report" / "report.md").read_text()
    assert "| gemma | teacher · SFT (π_ref) | 1 |" in md
    assert "|  | student · DCKD | 3 | 0.640 ± 0.000 | 66.0 ± 0.0 |" in md  # one student: nothing to bold


def test_benchmark_numbers_keep_their_own_names_in_the_columns():
    bench = {"eval/alpaca_eval2/lc_minimal_win_rate": 30.0, "eval/alpaca_eval2/win_rate": 20.0,
             "eval/open_llm/mmlu": 29.0, "eval/open_llm/mmlu_n_subjects": 57, "eval/open_llm/v1_average": 48.2,
             "eval/open_llm/leaderboard_bbh_normalized": 6.25, "eval/open_llm/v2_average": 22.5}
    cols = R.columns_for([{"method": "pad", "model": "gemma", "scores": bench}])
    assert [c.key for c in cols] == ["eval/alpaca_eval2/lc_minimal_win_rate", "eval/alpaca_eval2/win_rate",
                                     "eval/open_llm/leaderboard_bbh_normalized", "eval/open_llm/mmlu",
                                     "eval/open_llm/v1_average", "eval/open_llm/v2_average"]
    assert cols[0].header == "AlpacaEval 2 LC-minimal (%)" and "not the leaderboard's LC" in cols[0].axis
    assert [c.headline for c in cols[-2:]] == [True, True]


def test_mt_bench_category_table_and_the_arena_ci_note(tmp_path):
    def rec(method, seed, cats, arena):
        scores = {f"eval/mt_bench/category/{c}": v for c, v in cats.items()}
        scores.update({"eval/mt_bench/score": sum(cats.values()) / len(cats), "eval/arena_hard/score": arena,
                       "eval/arena_hard/score_ci_low": arena - 2, "eval/arena_hard/score_ci_high": arena + 2,
                       "eval/arena_hard/ci_n_models": 1})
        return {"method": method, "model": "gemma", "seed": seed, "hparams": {}, "scores": scores, "references": {}}

    recs = [rec("dckd", 0, {"writing": 8.0, "math": 3.0}, 20.0), rec("dckd", 1, {"writing": 6.0, "math": 5.0}, 22.0),
            rec("adpa", 0, {"writing": 7.0, "stem": 9.0}, 30.0)]
    md = R.write_report(recs, tmp_path)["markdown"].read_text()
    section = md.split("## MT-Bench per category")[1]
    assert "| Model | Method | Writing | Math | STEM | Overall |" in section
    # dckd: writing (8 + 6) / 2 = 7.00 ± 1.41, math (3 + 5) / 2 = 4.00 ± 1.41, no STEM
    assert "| gemma | student · DCKD | 7.00 ± 1.41 | 4.00 ± 1.41 | — | 5.50 ± 0.00 |" in section  # both seeds 5.5
    assert "| gemma | student · ADPA | 7.00 | — | 9.00 | 8.00 |" in section
    assert "Arena-Hard 95% CI: per-model bootstrap" in md
    tex = (tmp_path / "report.tex").read_text()
    assert r"\label{tab:mt-bench-categories}" in tex and r"7.00 $\pm$ 1.41" in tex


# ----------------------------------------------------------------------------- comparability, labels, plots
def _run(method="dpo", seed=0, steps=150, win=60.0, hparams=None, written="2025-01-01", sft_win=50.0, ci=None,
         name=None, **more_scores):
    hp = {"name": method, **(hparams or {})}
    scores = {"toy/win_rate": win, "toy/oracle_reward": win / 100, **more_scores}
    if ci:
        scores.update({"toy/win_rate_ci_low": ci[0], "toy/win_rate_ci_high": ci[1]})
    return {"run": {"name": name or f"{method}-gemma-s{seed}", "group": "g", "id": f"{method}{seed}{steps}"},
            "method": method, "model": "gemma", "seed": seed, "world": "toy", "hparams": hp, "scores": scores,
            "references": {R.SFT_STUDENT: {"toy/win_rate": sft_win, "toy/oracle_reward": sft_win / 100}},
            "artifacts": {"data": "d0", "sft_teacher": "t0", "dpo_teacher": "p0", "sft_student": "s0",
                          "distill": f"x{method}{seed}{steps}"},
            "config": {"method": hp, "seed": seed, "model": {"family": "gemma"}, "paths": {"results": f"/r{seed}"},
                       "stages": {"distill": {"steps": steps, "lr": 1e-4}}, "data": {"sizes": {"sft": 256}}},
            "written": written}


def test_runs_of_different_sizes_are_separate_blocks_not_one_run(tmp_path, caplog):
    recs = [_run(steps=150, win=70.0, written="2025-01-01"), _run(steps=10, win=52.0, written="2025-01-02")]
    kept = R.dedupe(recs, dropped := [])
    assert len(kept) == 2 and dropped == [] and "duplicate" not in caplog.text
    assert sorted(r["_block"] for r in kept) == ["gemma · stages.distill.steps=10",
                                                 "gemma · stages.distill.steps=150"]
    md = R.write_report(recs, tmp_path)["markdown"].read_text()
    assert "2 runs." in md
    assert "| gemma · stages.distill.steps=10 | student · SFT (π_sft) | 1 |" in md
    assert "| gemma · stages.distill.steps=150 | student · SFT (π_sft) | 1 |" in md
    assert "|  | student · DPO | 1 | 0.700 | 70.0 |" in md and "|  | student · DPO | 1 | 0.520 | 52.0 |" in md
    assert "each setup is a block of its own" in md and "duplicate" not in md
    # other teachers (stage fingerprints) with the same config are another setup too
    other = _run(steps=150, win=66.0)
    other["artifacts"]["dpo_teacher"] = "p1"
    blocks = sorted(r["_block"] for r in R.assign_setups([recs[0], other]))
    assert blocks == ["gemma · artifact/dpo_teacher=p0", "gemma · artifact/dpo_teacher=p1"]
    # where a run was stored or logged does not matter: the same setup, a duplicate, warned about
    again = _run(steps=150, win=71.0, written="2025-01-03", name="dpo-gemma-s0-again")
    again["config"]["paths"]["results"] = "/elsewhere"
    md = R.write_report([recs[0], again], tmp_path / "dup")["markdown"].read_text()
    assert "\n1 run. " in md
    assert ("1 duplicate run dropped (the one written later is kept): dpo-gemma-s0 (dpo0150), written 2025-01-01, "
            "replaced by dpo-gemma-s0-again (dpo0150), written 2025-01-03") in md
    assert "duplicate run dropped: dpo-gemma-s0 (dpo0150)" in caplog.text


def test_labels_show_fixed_non_default_hyperparameters_rounded():
    defaults = R.method_defaults("adpa", "toy", "gemma")
    assert defaults["gamma"] == 0.1 and defaults["top_k"] == 5  # conf/method/adpa.yaml, top_k from the toy world
    assert R.method_defaults("no_such_method") is None
    gamma0 = [_run("adpa", s, hparams={"gamma": 0.0, "top_k": 5, "advantage_clamp": False}) for s in (0, 1)]
    cols = R.columns_for(gamma0)
    labels = [r.label for r in R.build_rows(gamma0, cols) if r.kind == "method"]
    assert labels == ["student · ADPA (γ=0)"]  # a γ=0-only sweep is not "ADPA"
    default = [_run("adpa", 0, hparams={"gamma": 0.1, "top_k": 5, "advantage_clamp": False})]
    assert [r.label for r in R.build_rows(default, cols) if r.kind == "method"] == ["student · ADPA"]
    betas = [_run("dpo", 0, hparams={"beta": 6.466422717414559}), _run("dpo", 0, hparams={"beta": 0.0123456})]
    labels = [r.label for r in R.build_rows(betas, cols) if r.kind == "method"]
    assert labels == ["student · DPO (β=0.0123)", "student · DPO (β=6.47)"]
    close = [_run("dpo", 0, hparams={"beta": 6.4661}), _run("dpo", 0, hparams={"beta": 6.4669})]
    labels = [r.label for r in R.build_rows(close, cols) if r.kind == "method"]
    assert labels == ["student · DPO (β=6.466)", "student · DPO (β=6.467)"]  # as many digits as tell them apart
    assert R._num(0.05) == "0.05" and R._num(1.0) == "1" and R._num(50) == "50" and R.digits_for([0.1, 0.2]) == 3


def test_references_are_never_marked_best():
    recs = [_run("dpo", 0, win=40.0, sft_win=55.0), _run("dckd", 0, win=45.0, sft_win=55.0, hparams={"alpha": 0.1,
                                                                                                        "top_k": 50})]
    cols = R.columns_for(recs)
    rows = R.build_rows(recs, cols)
    best = R.best_cells(rows, cols)
    assert {rows[i].label for i, _ in best} == {"student · DCKD"}  # not the SFT student at 55
    tied = [_run("dpo", 0, win=50.0), _run("dckd", 0, win=50.0, hparams={"alpha": 0.1, "top_k": 50})]
    assert R.best_cells(R.build_rows(tied, R.columns_for(tied)), R.columns_for(tied)) == set()  # all tied: none


def test_log_axes_for_log_grids():
    assert R.x_scale([0, 0.05, 0.1, 0.2, 0.4, 0.8]) == "symlog"
    assert R.x_scale([0.05, 0.1, 0.2, 0.4, 0.8]) == "log"
    assert R.x_scale([0.01, 0.1, 1, 10]) == "log" and R.x_scale([0.01, 3.0]) == "log"
    assert R.x_scale([0.1, 0.5, 1.0]) == "linear" and R.x_scale([0.2, 0.4, 0.6, 0.8]) == "linear"
    assert R.x_scale([0, 1, 2]) == "linear" and R.x_scale([-1, 1, 10]) == "linear"


def test_one_kind_of_band_per_plot():
    two, one_ci, one_bare = {"v": [60.0, 64.0], "ci": [None, None]}, {"v": [58.0], "ci": [(48.0, 68.0)]}, \
        {"v": [58.0], "ci": [None]}
    assert R.band_kind([two, one_ci]) == "t"  # a t interval somewhere: the single-seed point gets none
    assert all(math.isnan(x) for x in R._band(one_ci, kind="t"))
    assert R.band_kind([one_ci, one_ci]) == "run" and R._band(one_ci, kind="run") == (48.0, 68.0)
    assert R.band_kind([one_ci, one_bare]) is None


def test_gamma_sweep_plot_names_its_band_and_uses_a_log_axis(tmp_path):
    recs = [_run("adpa", s, hparams={"gamma": g, "top_k": 5, "advantage_clamp": False}, win=60 + 10 * g + s,
                 ci=(50.0, 70.0)) for g in (0.0, 0.05, 0.1, 0.2, 0.4, 0.8) for s in (0, 1)]
    recs.append(_run("adpa", 0, hparams={"gamma": 1.6, "top_k": 5, "advantage_clamp": False}, win=50.0,
                     ci=(40.0, 60.0)))
    paths = R.write_report(recs, tmp_path, metrics=["toy/win_rate"])
    svg = paths["plot/sensitivity_adpa_gamma_toy_win_rate.svg"].read_text()
    assert "95% CI over seeds (Student" in svg and "one seed: no interval" in svg
    assert "log scale above 0.05" in svg and "bootstrap" not in svg
    md = paths["markdown"].read_text()
    assert "student · ADPA (γ=1.6)" in md and "student · ADPA (γ=0)" in md


def test_latex_of_a_crafted_report_compiles(tmp_path):
    recs = [_run(steps=150, win=70.0), _run(steps=10, win=52.0),
            _run("pad_lppd", 0, hparams={"beta": 6.466422717414559, "calibration_lambda": 1e-05},
                 **{"eval/open_llm/leaderboard_bbh_normalized": 6.25, "eval/alpaca_eval2/lc_win_rate": 12.5})]
    paths = R.write_report(recs, tmp_path)
    tex = paths["latex"].read_text()
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    assert r"$\beta=6.47$" in body and r"$\lambda=10^{-5}$" in body and r"$\pi_{\mathrm{sft}}$" in body
    assert r"gemma $\cdot$ stages.distill.steps=10" in body and r"AlpacaEval 2 LC (\%)" in body
    assert body.isascii()  # pdflatex without extra packages (the notes, comments, may name runs as they are)
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed; the parser-level checks above ran")
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n" + tex + "\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_format_rate_is_the_oracles_format_term():
    from eval.benchmarks.plugins.oracle import oracle_scores
    from toyworld.task import ToyTask

    task = ToyTask()
    answer = ["a", "b"]
    rows = [{"response": r, "answer": answer} for r in ("[ a b ]", "[a b", "[ a b", "a b ]", "a b", "[ ]")]
    scores = oracle_scores(task, rows, None, n_boot=10, seed=0)
    assert scores["toy/format_rate"] == pytest.approx(2 / 6)  # "[ a b ]" and "[ ]" (an empty list) are bracketed
    fmt = [(task.reward(r["response"], answer) - task.cfg.w_correct * task.correctness(r["response"], answer))
           / task.cfg.w_format for r in rows]
    assert scores["toy/format_rate"] == pytest.approx(sum(fmt) / len(fmt))
