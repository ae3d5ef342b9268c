"""AlpacaEval 2: our scorer and annotator against alpaca_eval's own functions and published annotations."""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval.benchmarks import DataFormatError
from eval.benchmarks import alpaca_eval2 as ae2
from eval.judges.base import FunctionJudge, JudgeReply

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data"
AE = REF / "alpaca_eval"
needs_ref = pytest.mark.skipif(not AE.is_dir(), reason=f"AlpacaEval reference data not found at {AE}")
MODELS = ["gpt-3.5-turbo-1106", "alpaca-7b", "gpt4_gamed", "FuseChat-Llama-3.2-3B-Instruct", "gpt4_1106_preview"]


def annotations(model: str) -> list[dict]:
    return json.loads((AE / model / "annotations.json").read_text())


def alpaca_eval_modules():
    ae2._alpaca_eval()
    import alpaca_eval.metrics
    import alpaca_eval.metrics.glm_winrate as glm

    return alpaca_eval.metrics, glm


@pytest.fixture(scope="module")
def leaderboard() -> pd.DataFrame:
    ae2._alpaca_eval()
    import alpaca_eval.constants as c

    folder = Path(c.CURRENT_DIR) / "leaderboards" / "data_AlpacaEval_2"
    path = folder / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
    return pd.read_csv(path, index_col=0)


# ---- win rate -----------------------------------------------------------------------------
@needs_ref
@pytest.mark.parametrize("model", MODELS)
def test_win_rate_equals_alpaca_eval_get_winrate(model, leaderboard):
    metrics, _ = alpaca_eval_modules()
    rows = annotations(model)
    ours = ae2.score_annotations(rows, lc=None)
    theirs = metrics.get_winrate(rows)
    for key in ae2.METRIC_KEYS:
        assert ours[key] == theirs[key], key
    assert ours["avg_length"] == int(np.mean([len(r["output_2"]) for r in rows]))
    # ...and the published leaderboard row shipped with the package
    row = leaderboard.loc[model]
    assert ours["win_rate"] == pytest.approx(row["win_rate"], abs=1e-9)
    assert ours["standard_error"] == pytest.approx(row["standard_error"], abs=1e-9)
    assert (ours["n_wins"], ours["n_wins_base"], ours["n_draws"], ours["n_total"]) == (
        row["n_wins"], row["n_wins_base"], row["n_draws"], row["n_total"])
    assert ours["avg_length"] == row["avg_length"]
    assert ours["lc_variant"] is None and ours["length_controlled_winrate"] is None


@needs_ref
def test_avg_length_from_model_outputs_file():
    outputs = ae2.read_model_outputs(AE / "gpt-3.5-turbo-1106" / "model_outputs.json")
    ours = ae2.score_annotations(annotations("gpt-3.5-turbo-1106"), lc=None, model_outputs=outputs)
    assert ours["avg_length"] == 796


# ---- length-controlled win rate -----------------------------------------------------------------
def _direct_lc(monkeypatch, tmp_path, rows, glm_name, files=None):
    """alpaca_eval's own get_length_controlled_winrate, its hub download pointed at local files."""
    _, glm = alpaca_eval_modules()
    if files is None:  # the minimal formula never reads the difficulty, only needs the table to exist
        placeholder = tmp_path / "placeholder_df_gamed.csv"
        pd.DataFrame({"model": "x", "index": range(len(rows)), "instruction_difficulty": 1.0}).to_csv(
            placeholder, index=False)
        files = {"df_gamed.csv": placeholder}
    monkeypatch.setattr(glm, "hf_hub_download", lambda repo_id, filename, **kw: str(files[filename]))
    import sklearn

    with warnings.catch_warnings(), sklearn.config_context():  # alpaca_eval flips a global sklearn flag
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn deprecations inside alpaca_eval
        return glm.get_length_controlled_winrate(pd.DataFrame(rows), glm_name=glm_name, save_weights_dir=None,
                                                 is_add_glm_preference_inplace=False)


@needs_ref
@pytest.mark.parametrize("model", ["gpt-3.5-turbo-1106", "gpt4_gamed"])
def test_lc_minimal_equals_alpaca_eval(model, monkeypatch, tmp_path):
    rows = annotations(model)
    ours = ae2.score_annotations(rows)  # no GLM tables: the minimal variant, under its own name
    assert ours["lc_variant"] == ae2.LC_MINIMAL
    theirs = _direct_lc(monkeypatch, tmp_path, rows, ae2.LC_MINIMAL)
    assert ours["lc_minimal_win_rate"] == pytest.approx(theirs["length_controlled_winrate"], abs=1e-6)
    # never under the LC's name, and no standard error: alpaca_eval's is the sem of a constant
    assert ours["length_controlled_winrate"] is None and ours["lc_standard_error"] is None
    assert theirs["lc_standard_error"] < 1e-9
    flat = ae2.flat_scores(ours)
    assert "lc_win_rate" not in flat and "lc_win_rate_stderr" not in flat
    assert flat["lc_minimal_win_rate"] == ours["lc_minimal_win_rate"]
    assert ours["win_rate"] == theirs["win_rate"]


@needs_ref
def test_lc_of_the_reference_against_itself_is_50():
    ours = ae2.score_annotations(annotations("gpt4_1106_preview"))
    assert ours["win_rate"] == 50.0 and ours["lc_minimal_win_rate"] == 50.0


@needs_ref
def test_lc_is_skipped_below_five_rows():
    ours = ae2.score_annotations(annotations("alpaca-7b")[:4])
    assert ours["lc_variant"] is None and ours["length_controlled_winrate"] is None and ours["n_total"] == 4


def _synthetic_glm_tables(folder: Path, n: int, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    gamed = pd.concat([pd.DataFrame({"model": name, "index": range(n), "instruction_difficulty": difficulty,
                                     "preference": rng.uniform(size=n), "std_delta_len": rng.normal(size=n),
                                     "not_gamed_baseline": False}) for name in ("verbose", "concise")])
    files = {name: folder / name for name in ("df_gamed.csv", "instruction_difficulty.csv")}
    gamed.to_csv(files["df_gamed.csv"], index=False)
    pd.DataFrame({"instruction_difficulty": difficulty}).to_csv(files["instruction_difficulty.csv"])
    return files


@needs_ref
def test_lc_v1_served_from_local_tables_equals_alpaca_eval(monkeypatch, tmp_path):
    rows = annotations("alpaca-7b")
    files = _synthetic_glm_tables(tmp_path, len(rows))
    ours = ae2.score_annotations(rows, glm_data_dir=tmp_path)
    assert ours["lc_variant"] == ae2.LC_FULL
    theirs = _direct_lc(monkeypatch, tmp_path, rows, ae2.LC_FULL, files)
    assert ours["length_controlled_winrate"] == pytest.approx(theirs["length_controlled_winrate"], abs=1e-6)
    assert ours["lc_standard_error"] == pytest.approx(theirs["lc_standard_error"], abs=1e-6)
    assert ours["lc_minimal_win_rate"] is None
    flat = ae2.flat_scores(ours)
    assert flat["lc_win_rate"] == ours["length_controlled_winrate"] and "lc_minimal_win_rate" not in flat
    assert flat["lc_win_rate_stderr"] == ours["lc_standard_error"]
    # a subset cannot use the per-instruction difficulty: auto falls back, an explicit request refuses
    assert ae2.score_annotations(rows[:100], glm_data_dir=tmp_path)["lc_variant"] == ae2.LC_MINIMAL
    with pytest.raises(ValueError, match="whole eval set"):
        ae2.score_annotations(rows[:100], glm_data_dir=tmp_path, lc=ae2.LC_FULL)


@needs_ref
@pytest.mark.parametrize("model", ["gpt-3.5-turbo-1106", "gpt4_gamed"])
def test_lc_v1_from_crafted_tables_equals_alpaca_eval_called_directly(model, monkeypatch, tmp_path):
    """The exact LC on the published annotations: tables in alpaca_eval's format (read from its source:
    df_gamed.csv holds two gamed models' rows with model/index/instruction_difficulty/preference/
    std_delta_len/not_gamed_baseline; instruction_difficulty.csv an index and one column), the
    regularisation towards the gamed rows and the difficulty term both enter the fit."""
    rows = annotations(model)
    files = _synthetic_glm_tables(tmp_path, len(rows), seed=7)
    ours = ae2.score_annotations(rows, glm_data_dir=tmp_path)
    theirs = _direct_lc(monkeypatch, tmp_path, rows, ae2.LC_FULL, files)
    assert ours["lc_variant"] == ae2.LC_FULL
    assert abs(ours["length_controlled_winrate"] - theirs["length_controlled_winrate"]) <= 1e-6
    assert abs(ours["lc_standard_error"] - theirs["lc_standard_error"]) <= 1e-6
    minimal = ae2.score_annotations(rows)["lc_minimal_win_rate"]
    assert abs(minimal - ours["length_controlled_winrate"]) > 1e-3  # a different number, hence another name


def test_glm_tables_of_the_wrong_format_are_refused(tmp_path):
    files = _synthetic_glm_tables(tmp_path, 12)
    assert ae2.check_glm_files(files) == 12
    pd.read_csv(files["df_gamed.csv"]).drop(columns=["not_gamed_baseline"]).to_csv(files["df_gamed.csv"], index=False)
    with pytest.raises(DataFormatError, match="df_gamed.csv.*not_gamed_baseline"):
        ae2.check_glm_files(files)
    files = _synthetic_glm_tables(tmp_path, 12)
    pd.DataFrame({"difficulty": np.zeros(10), "extra": "x"}).to_csv(files["instruction_difficulty.csv"])
    with pytest.raises(DataFormatError, match="instruction_difficulty.csv: expected an index and one numeric column"):
        ae2.check_glm_files(files)
    pd.DataFrame({"instruction_difficulty": np.zeros(10)}).to_csv(files["instruction_difficulty.csv"])
    with pytest.raises(DataFormatError, match="covers 12 instructions but .* has 10"):
        ae2.check_glm_files(files)


def test_alpaca_eval_1_reference_is_refused(tmp_path):
    path = tmp_path / "model_outputs.json"
    path.write_text(json.dumps([{"instruction": "a", "output": "b", "generator": "text_davinci_003"}]))
    with pytest.raises(DataFormatError, match="AlpacaEval 1.*text_davinci_003"):
        ae2.load_reference_outputs(path)


@needs_ref
def test_published_annotations_table_shows_the_minimal_variant_under_its_own_name(tmp_path):
    """Acceptance: without the GLM tables, the printed table and the report name the minimal variant."""
    import io

    from rich.console import Console

    from eval.report import columns_for
    from eval.suite import print_benchmark_table

    rows = []
    for model in ("gpt-3.5-turbo-1106", "gpt4_gamed"):
        flat = {f"eval/alpaca_eval2/{k}": v for k, v in ae2.flat_scores(ae2.score_annotations(annotations(model))).items()}
        assert "eval/alpaca_eval2/lc_win_rate" not in flat and "eval/alpaca_eval2/lc_win_rate_stderr" not in flat
        rows.append((model, flat))
    buf = io.StringIO()
    print_benchmark_table(rows, console=Console(file=buf, width=250, force_terminal=False))
    text = buf.getvalue()
    assert "LC-minimal" in text and "AlpacaEval 2 LC (%)" not in text
    assert f"{rows[0][1]['eval/alpaca_eval2/lc_minimal_win_rate']:.1f}" in text
    headers = [c.header for c in columns_for([{"scores": rows[0][1]}])]
    assert any("LC-minimal" in h for h in headers) and "AlpacaEval 2 LC (%)" not in headers


@needs_ref
def test_lc_v1_without_tables_says_what_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError, match="df_gamed.csv.*tatsu-lab/alpaca_eval"):
        ae2.score_annotations(annotations("alpaca-7b")[:10], lc=ae2.LC_FULL, glm_data_dir=tmp_path)


@needs_ref
def test_scoring_writes_nothing_into_the_installed_package():
    ae2._alpaca_eval()
    import alpaca_eval

    pkg = Path(alpaca_eval.__file__).parent

    def snapshot():
        return {p: p.stat().st_mtime_ns for p in pkg.rglob("*") if "__pycache__" not in p.parts}

    before = snapshot()
    ae2.score_annotations(annotations("alpaca-7b"))
    assert snapshot() == before


# ---- the annotator: prompt, order, logprob parsing -------------------------------------------
@needs_ref
def test_annotator_files_come_from_the_package_and_match_the_reference():
    spec = ae2.load_annotator()
    assert spec.prompt_template == (AE / "annotator" / "alpaca_eval_clf.txt").read_text()
    assert spec == ae2.load_annotator(AE / "annotator" / "weighted_alpaca_eval_gpt4_turbo.yaml")
    assert (spec.model_name, spec.temperature, spec.max_tokens, spec.top_logprobs) == ("gpt-4-1106-preview", 1.0, 1, 5)
    assert (spec.numerator_token, spec.denominator_tokens, spec.is_binarize) == ("m", ("m", "M"), False)


@needs_ref
@pytest.mark.parametrize("model", ["gpt-3.5-turbo-1106", "alpaca-7b", "gpt4_gamed"])
def test_published_preferences_reproduced_from_raw_completions(model):
    """Our switch rule + logprob parsing give alpaca_eval's stored preference on every judged row."""
    spec = ae2.load_annotator()
    judged = 0
    for r in annotations(model):
        if r["raw_completion"] is None:  # alpaca_eval skips the judge only for identical outputs
            assert r["output_1"] == r["output_2"] and r["preference"] == 1.5
            continue
        top = [r["raw_completion"]["logprobs"]["content"][0]["top_logprobs"]]
        pref = ae2.preference_from_logprobs(top, spec, switched=ae2.is_switched(r["instruction"]))
        assert pref == pytest.approx(r["preference"], abs=1e-9)
        judged += 1
    assert judged > 790


@needs_ref
def test_annotator_messages_follow_the_switch():
    spec = ae2.load_annotator()
    instruction, ref_out, model_out = "Name a colour.", "REFERENCE ANSWER", "MODEL ANSWER"
    for switched, first in [(False, ref_out), (True, model_out)]:
        system, user = ae2.annotator_messages(instruction, ref_out, model_out, spec, switched=switched)
        assert system["role"] == "system" and system["content"].startswith("You are a highly efficient assistant")
        assert user["role"] == "user" and '"instruction": """Name a colour."""' in user["content"]
        m_block = user["content"].split('"model_identifier": "m"')[1].split('"model_identifier": "M"')[0]
        assert first in m_block
        assert "{instruction}" not in user["content"] and "{output_1}" not in user["content"]


def test_missing_logprobs_give_nan_preference():
    spec = ae2.AnnotatorSpec("x", "", "j", 1.0, 1, 5, "m", ("m", "M"), False)
    assert math.isnan(ae2.preference_from_logprobs(None, spec, switched=False))
    assert math.isnan(ae2.preference_from_logprobs([[{"token": "The", "logprob": -0.1}]], spec, switched=True))
    assert ae2.preference_from_logprobs([[{"token": "M", "logprob": 0.0}]], spec, switched=False) == 2.0
    assert ae2.preference_from_logprobs([[{"token": "M", "logprob": 0.0}]], spec, switched=True) == 1.0


@needs_ref
def test_annotate_with_a_judge_that_always_says_M():
    ref = ae2.load_reference_outputs(AE)[:12]
    outputs = ae2.make_model_outputs(ref, [f"answer {i}" for i in range(12)], generator="student")
    outputs[3]["output"] = ref[3]["output"]  # identical outputs: no judge call, a tie

    def always_m_capital(messages, **kw):
        return JudgeReply(text="M", top_logprobs=[[{"token": "M", "logprob": -0.01}, {"token": "m", "logprob": -4.6}]])

    judge = FunctionJudge(always_m_capital)
    rows = ae2.annotate(outputs, ref, judge)
    assert judge.calls == 11
    req = judge.requests[0]
    assert (req["temperature"], req["max_tokens"], req["logprobs"], req["top_logprobs"]) == (1.0, 1, True, 5)
    p_m = math.exp(-4.6) / (math.exp(-4.6) + math.exp(-0.01))
    for i, r in enumerate(rows):
        assert r["instruction"] == ref[i]["instruction"] and r["generator_2"] == "student"
        if i == 3:
            assert r["preference"] == 1.5 and r["raw_completion"] is None
        else:  # "M" is the second shown output: the model unless the pair was switched
            expected = 1 + p_m if ae2.is_switched(r["instruction"]) else 2 - p_m
            assert r["preference"] == pytest.approx(expected)
    scores = ae2.score_annotations(rows, lc=None)
    assert scores["n_total"] == 12 and scores["n_draws"] == 1


@needs_ref
def test_end_to_end_over_http_reproduces_the_published_win_rate():
    """Fake judge server replays gpt-4-1106-preview's recorded logprobs for each prompt."""
    from eval.judges.fake_server import FakeJudgeServer
    from eval.judges.http import HTTPJudge

    published = annotations("gpt-3.5-turbo-1106")
    recorded = {r["instruction"]: r["raw_completion"] for r in published if r["raw_completion"]}
    pattern = re.compile(r'"instruction": """(.*?)""",\n}', re.S)

    def replay(body):
        instruction = pattern.search(body["messages"][1]["content"]).group(1)
        top = recorded[instruction]["logprobs"]["content"][0]["top_logprobs"]
        return {"text": top[0]["token"], "top_logprobs": [[(t["token"], t["logprob"]) for t in top]]}

    ref = ae2.load_reference_outputs(AE)
    outputs = ae2.read_model_outputs(AE / "gpt-3.5-turbo-1106" / "model_outputs.json")
    with FakeJudgeServer(replay) as server:
        judge = HTTPJudge("gpt-4-1106-preview", base_url=server.base_url, api_key_env=None, max_concurrency=16)
        rows = ae2.annotate(outputs, ref, judge)
        assert server.calls == len(recorded)
    ours = ae2.score_annotations(rows, lc=None)
    assert ours["win_rate"] == pytest.approx(9.177964561962733, abs=1e-6)
    assert (ours["n_wins"], ours["n_wins_base"], ours["n_draws"]) == (64, 737, 4)


# ---- our own pairwise judge ----------------------------------------------------------------
@needs_ref
def test_annotations_from_preferences_and_their_score():
    ref = ae2.load_reference_outputs(AE)[:4]
    outputs = ae2.make_model_outputs(ref, ["a", "b", "c", "d"], generator="student")
    rows = ae2.annotations_from_preferences(outputs[::-1], ref, [2.0, 0, 1.0, float("nan")][::-1], annotator="mine")
    assert [r["instruction"] for r in rows] == [r["instruction"] for r in ref]  # reference order
    assert [r["preference"] for r in rows][:3] == [2.0, 1.5, 1.0] and math.isnan(rows[3]["preference"])
    scores = ae2.score_annotations(rows, lc=None)
    assert scores["win_rate"] == pytest.approx(50.0) and scores["n_total"] == 3 and scores["n_missing"] == 1
    with pytest.raises(ValueError, match="outside"):
        ae2.annotations_from_preferences(outputs, ref, [2.5, 1, 1, 1], annotator="mine")


@needs_ref
def test_annotate_with_verdicts_uses_our_prompt_and_undoes_the_switch():
    ref = ae2.load_reference_outputs(AE)[:10]
    outputs = ae2.make_model_outputs(ref, ["GOOD"] * 10, generator="student")

    def prefers_good(messages, **kw):
        text = messages[0]["content"]
        first = text.split("[Response 1]\n")[1].split("\n[End of Response 1]")[0]
        return "Reasoning...\n[[1]]" if first == "GOOD" else "Reasoning...\n[[2]]"

    rows = ae2.annotate_with_verdicts(outputs, ref, FunctionJudge(prefers_good))
    assert all(r["preference"] == 2.0 for r in rows) and rows[0]["annotator"] == ae2.PAIRWISE_ANNOTATOR
    assert ae2.parse_pairwise_verdict("x [[2]] then [[tie]]") == 1.5
    assert math.isnan(ae2.parse_pairwise_verdict("no verdict"))


# ---- files ----------------------------------------------------------------------------------
def test_missing_reference_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        ae2.load_reference_outputs(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "gpt4_1106_preview" / "model_outputs.json") in msg and "tatsu-lab/alpaca_eval" in msg


def test_malformed_json_names_file_and_line(tmp_path):
    bad = tmp_path / "model_outputs.json"
    bad.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]\n')
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(bad))}, line 3"):
        ae2.read_model_outputs(bad)


@needs_ref
def test_model_outputs_round_trip(tmp_path):
    ref = ae2.load_reference_outputs(AE)[:3]
    rows = ae2.make_model_outputs(ref, ["x", "y", "z"], generator="student")
    path = ae2.write_model_outputs(tmp_path / "out" / "model_outputs.json", rows)
    back = ae2.read_model_outputs(path)
    assert back == rows and set(back[0]) == {"instruction", "output", "generator", "dataset"}
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())
    assert os.path.getsize(path) > 0
