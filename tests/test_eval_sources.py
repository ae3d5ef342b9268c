"""The benchmarks' files: every source pinned to a commit, with the sha256 of the version the papers
used (the reference-data files where we have them), and a file of another version refused by name."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import CONF, compose_cfg
from distill.artifacts import ArtifactStore
from eval.benchmarks import DataFormatError
from eval.benchmarks import arena_hard as ah
from eval.benchmarks.sources import WrongVersionFile, identify_version, sha256_of, verify_files
from eval.suite import Suite

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data"
needs_ref = pytest.mark.skipif(not REF.is_dir(), reason=f"benchmark reference data not found at {REF}")
# our file layout -> the reference-data file holding the same bytes
SAME_FILES = {
    ("alpaca_eval2", "gpt4_1106_preview/model_outputs.json"): "alpaca_eval/gpt4_1106_preview/model_outputs.json",
    ("arena_hard", "question.jsonl"): "arena_hard_v0.1/question.jsonl",
    ("arena_hard", "model_answer/gpt-4-0314.jsonl"): "arena_hard_v0.1/model_answer/gpt-4-0314.jsonl",
    ("arena_hard", "judge_config.yaml"): "arena_hard_v0.1/judge_config.yaml",
    ("mt_bench", "question.jsonl"): "mt_bench/question.jsonl",
    ("mt_bench", "reference_answer/gpt-4.jsonl"): "mt_bench/reference_answer_gpt-4.jsonl",
    ("mt_bench", "judge_prompts.jsonl"): "mt_bench/judge_prompts.jsonl",
}


def conf() -> dict:
    return yaml.safe_load((Path(CONF) / "eval" / "all.yaml").read_text())


def test_every_source_is_pinned_to_a_commit_and_checksummed():
    c = conf()
    commits = {"alpaca_eval2": "/cd543a1", "arena_hard": "/e883410", "mt_bench": "/0e6d3e4"}
    for bench, commit in commits.items():
        files, sums = c[bench]["files"], c[bench]["checks"]["sha256"]
        assert set(files) == set(sums), bench
        for rel, url in files.items():
            assert commit in url and "/main/" not in url, (bench, rel, url)
            assert len(sums[rel]) == 64 and int(sums[rel], 16) >= 0
    # the GLM tables have no known checksum: their format is checked instead (alpaca_eval2.check_glm_files)
    assert set(c["alpaca_eval2"]["glm_files"]) == {"df_gamed.csv", "instruction_difficulty.csv"}


@needs_ref
def test_pinned_checksums_are_those_of_the_reference_files():
    c = conf()
    for (bench, rel), ref in SAME_FILES.items():
        assert c[bench]["checks"]["sha256"][rel] == sha256_of(REF / ref), (bench, rel)


def _arena_folder(root: Path) -> Path:
    d = root / "bench" / "arena_hard_v0.1"
    (d / "model_answer").mkdir(parents=True)
    for rel in ("question.jsonl", "model_answer/gpt-4-0314.jsonl", "judge_config.yaml"):
        shutil.copyfile(REF / "arena_hard_v0.1" / rel, d / rel)
    return d


def _v2_questions(path: Path) -> None:
    rows = [{"uid": f"{i:016x}", "category": "hard_prompt", "subcategory": "coding", "prompt": f"question {i}"}
            for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _full_cfg(tmp_path, *extra):
    return compose_cfg(["eval=all", "world=full", "judge=vllm", f"eval.data_root={tmp_path / 'bench'}",
                        "eval.download=false", *extra], tmp_path)


@needs_ref
def test_an_arena_hard_v2_question_file_is_refused_by_name(tmp_path, caplog):
    d = _arena_folder(tmp_path)
    with Suite(_full_cfg(tmp_path), ArtifactStore(tmp_path / "artifacts"), tmp_path / "out") as suite:
        questions, base, config, _ = suite.benchmark("arena_hard").load()  # the pinned files pass
        assert len(questions) == 500 and config.judge_model == "gpt-4-1106-preview"
        _v2_questions(d / "question.jsonl")
        with pytest.raises(WrongVersionFile) as e:
            suite.benchmark("arena_hard").load()
    msg = str(e.value)
    assert str(d / "question.jsonl") in msg and "Arena-Hard v2.0 question file" in msg
    assert "Arena-Hard v0.1 (lmarena/arena-hard-auto@e883410)" in msg and "4daad388" in msg
    # checks off: a warning, and the loader still refuses the other format, naming it
    with Suite(_full_cfg(tmp_path, "eval.verify_checksums=false"), ArtifactStore(tmp_path / "artifacts"),
               tmp_path / "out") as suite, caplog.at_level(logging.WARNING):
        with pytest.raises(DataFormatError, match="Arena-Hard v2.0 question file"):
            suite.benchmark("arena_hard").load()
    assert "not the pinned Arena-Hard v0.1" in caplog.text


def test_other_versions_are_named_by_their_contents(tmp_path):
    _v2_questions(tmp_path / "question.jsonl")
    assert "Arena-Hard v2.0 question file" in identify_version(tmp_path / "question.jsonl")
    (tmp_path / "a.jsonl").write_text(json.dumps({"uid": "1", "ans_id": "x", "model": "m", "messages": []}) + "\n")
    assert "Arena-Hard v2.0 answer file" in identify_version(tmp_path / "a.jsonl")
    with pytest.raises(DataFormatError, match="Arena-Hard v2.0 answer file"):
        ah.read_answers(tmp_path / "a.jsonl")
    (tmp_path / "judge_config.yaml").write_text("bench_name: arena-hard-v2.0\njudge_model: gpt-4.1\n")
    assert "arena-hard-v2.0" in identify_version(tmp_path / "judge_config.yaml")
    with pytest.raises(DataFormatError, match="judge config of arena-hard-v2.0"):
        ah.load_judge_config(tmp_path / "judge_config.yaml")
    (tmp_path / "ref.json").write_text(json.dumps([{"instruction": "i", "output": "o", "generator": "text_davinci_003"}]))
    assert "AlpacaEval 1" in identify_version(tmp_path / "ref.json")
    (tmp_path / "x.jsonl").write_text('{"question_id": 1}\n')
    assert identify_version(tmp_path / "x.jsonl") is None


def test_a_checksum_mismatch_names_file_and_both_checksums(tmp_path):
    (tmp_path / "f.jsonl").write_text('{"question_id": 1}\n')
    good = sha256_of(tmp_path / "f.jsonl")
    verify_files(tmp_path, {"f.jsonl": good}, what="X")
    with pytest.raises(WrongVersionFile) as e:
        verify_files(tmp_path, {"f.jsonl": "0" * 64}, what="X", version="X v1")
    assert str(tmp_path / "f.jsonl") in str(e.value) and good in str(e.value) and "0" * 64 in str(e.value)
    assert "eval.verify_checksums=false" in str(e.value)


@needs_ref
def test_alpaca_eval_reference_is_checked_and_the_glm_dir_is_configurable(tmp_path):
    d = tmp_path / "bench" / "alpaca_eval" / "gpt4_1106_preview"
    d.mkdir(parents=True)
    shutil.copyfile(REF / "alpaca_eval" / "gpt4_1106_preview" / "model_outputs.json", d / "model_outputs.json")
    glm = tmp_path / "glm"
    cfg = _full_cfg(tmp_path, f"eval.alpaca_eval2.glm_dir={glm}")
    with Suite(cfg, ArtifactStore(tmp_path / "artifacts"), tmp_path / "out") as suite:
        refs, _, glm_dir = suite.benchmark("alpaca_eval2").load()
        assert len(refs) == 805 and glm_dir == glm
        rows = json.loads((d / "model_outputs.json").read_text())
        rows[0]["output"] += " "
        (d / "model_outputs.json").write_text(json.dumps(rows))
        with pytest.raises(WrongVersionFile, match="AlpacaEval 2 reference"):
            suite.benchmark("alpaca_eval2").load()


@needs_ref
def test_glm_tables_are_downloaded_into_glm_dir_when_reachable(tmp_path):
    """The hub stands in as a local HTTP server: the two tables land in eval.alpaca_eval2.glm_dir."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from omegaconf import OmegaConf

    home = tmp_path / "hub"
    home.mkdir()
    (home / "df_gamed.csv").write_text("model,index,instruction_difficulty,preference,std_delta_len,not_gamed_baseline\n")
    (home / "instruction_difficulty.csv").write_text(",instruction_difficulty\n")
    d = tmp_path / "bench" / "alpaca_eval" / "gpt4_1106_preview"
    d.mkdir(parents=True)
    shutil.copyfile(REF / "alpaca_eval" / "gpt4_1106_preview" / "model_outputs.json", d / "model_outputs.json")
    handler = partial(SimpleHTTPRequestHandler, directory=str(home))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        cfg = _full_cfg(tmp_path, "eval.download=true", f"eval.alpaca_eval2.glm_dir={tmp_path / 'glm'}")
        OmegaConf.update(cfg, "eval.alpaca_eval2.glm_files", {n: f"{url}/{n}" for n in
                                                              ("df_gamed.csv", "instruction_difficulty.csv")},
                         merge=False)
        with Suite(cfg, ArtifactStore(tmp_path / "artifacts"), tmp_path / "out") as suite:
            _, _, glm_dir = suite.benchmark("alpaca_eval2").load()
    finally:
        httpd.shutdown()
        httpd.server_close()
    for name in ("df_gamed.csv", "instruction_difficulty.csv"):
        assert (glm_dir / name).read_bytes() == (home / name).read_bytes()
