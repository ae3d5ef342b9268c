"""Scores are computed over complete inputs only, and a run's results file has a stable name."""
from __future__ import annotations

import json

import pytest
from omegaconf import open_dict

from conftest import compose_cfg
from distill.pipeline import plain_cfg
from distill.results import IncompleteAnswersError, check_answers, result_id, write_result

PROMPTS = [{"prompt": [{"role": "user", "content": f"sort : {c} a"}], "answer": ["a", c]} for c in "bcdef"]


def gens(prompts):
    return [{**p, "response": "[ a b ]"} for p in prompts]


def test_complete_answers_pass():
    rows = gens(PROMPTS)
    assert check_answers(rows, PROMPTS, "g.jsonl", fields=("prompt", "answer")) is rows


@pytest.mark.parametrize("rows,message", [
    (gens(PROMPTS[:3]), "g.jsonl: 3 answers for 5 prompts"),
    (gens(PROMPTS) + gens(PROMPTS[:1]), "g.jsonl: 6 answers for 5 prompts"),
    (gens([PROMPTS[1], PROMPTS[0], *PROMPTS[2:]]), "g.jsonl:1: answers another prompt than prompt 1"),
    ([*gens(PROMPTS[:4]), {**PROMPTS[4], "response": None}], "g.jsonl:5: no 'response' string"),
    ([*gens(PROMPTS[:4]), {**PROMPTS[4], "answer": ["z"], "response": "z"}], "g.jsonl:5: answers another prompt"),
])
def test_a_partial_or_foreign_answer_file_is_a_named_error(rows, message):
    with pytest.raises(IncompleteAnswersError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        check_answers(rows, PROMPTS, "out/g.jsonl".replace("out/", ""), fields=("prompt", "answer"))
    assert "rerun" in str(e.value)


def test_the_result_id_ignores_the_run_folder_and_logger(tmp_path):
    a = compose_cfg(["method=dpo"], tmp_path / "a")
    b = compose_cfg(["method=dpo", "logger=csv"], tmp_path / "b")
    for cfg, d in ((a, "2026-01-01_00-00-00"), (b, "2026-01-02_10-11-12")):
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / d)
            cfg.pop("hydra")
    assert result_id(plain_cfg(a)) == result_id(plain_cfg(b))
    c = compose_cfg(["method=dpo", "seed=1"], tmp_path / "a")
    with open_dict(c):
        c.pop("hydra")
    assert result_id(plain_cfg(c)) != result_id(plain_cfg(a))


def test_a_rerun_overwrites_its_results_file(tmp_path):
    p1 = write_result(tmp_path, "dpo-gemma-s0-abcd", {"scores": {"x": 1}})
    p2 = write_result(tmp_path, "dpo-gemma-s0-abcd", {"scores": {"x": 2}})
    assert p1 == p2 and json.loads(p2.read_text())["scores"] == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["dpo-gemma-s0-abcd.json"]  # no temporary file left


def test_a_wandb_key_without_network_goes_offline_at_once(monkeypatch, caplog):
    import logging

    from distill.pipeline import wandb_offline

    for k in ("WANDB_MODE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    with caplog.at_level(logging.WARNING, logger="distill.pipeline"):
        assert wandb_offline() is True
    assert "cannot be reached; logging offline" in caplog.text
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_offline() is False  # said explicitly: no probe
