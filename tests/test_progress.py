"""Progress in a log file: plain lines naming the stage, a line every period even inside a long
step, no foreign bars; the Lightning callback in place of Lightning's bar."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, TINY
from distill import progress as P


class Lines(list):
    signal: threading.Event


@pytest.fixture
def lines(monkeypatch):
    """Capture the plain lines (and signal each one)."""
    got, signal = Lines(), threading.Event()

    def emit(line):
        P._last_emit = time.monotonic()  # what the real _emit records
        got.append(line)
        signal.set()

    monkeypatch.setattr(P, "_emit", emit)
    monkeypatch.setenv(P.MODE_ENV, "plain")
    got.signal = signal
    return got


def test_a_line_comes_every_period_even_inside_a_long_step(lines):
    with P.stage("dpo_teacher"):
        with P.Tracker("reference log-probs", total=10, unit="pairs", every=0.05) as t:
            t.advance(3)
            # a step that takes longer than the period: it waits until the tracker has spoken by itself
            assert lines.signal.wait(timeout=30), "no progress line while the step ran"
            t.advance(7, loss=0.25)
    periodic, final = lines[:-1], lines[-1]
    assert periodic and all(line.startswith("[dpo_teacher] reference log-probs: ") for line in lines)
    assert re.search(r"\b3/10 pairs \(30%\), .* pairs/s, elapsed \d+:\d\d:\d\d", periodic[0])
    assert final.startswith("[dpo_teacher] reference log-probs: done, 10/10 pairs in ") and "loss 0.25" in final


def test_stage_names_nest_and_default_to_the_task(lines):
    with P.Tracker("lm_eval", total=2, every=60) as t:
        t.advance(2)
    with P.stage("distill/adpa"):
        with P.stage("teacher_cache"):
            assert P.current_stage() == "teacher_cache"
        assert P.current_stage() == "distill/adpa"
        with P.Tracker("training", total=1, every=60) as t:
            t.advance()
    assert P.current_stage() is None
    assert lines[0].startswith("[lm_eval]: done, 2/2 it") and lines[1].startswith("[distill/adpa] training: done")


def test_a_failed_task_says_stopped(lines):
    with pytest.raises(RuntimeError):
        with P.Tracker("judge gpt-4", total=5, stage="judging", unit="requests", every=60) as t:
            t.advance(2)
            raise RuntimeError("boom")
    assert lines == [lines[0]] and lines[0].startswith("[judging] judge gpt-4: stopped, 2/5 requests")


def test_settings_are_checked(monkeypatch):
    monkeypatch.setenv(P.PERIOD_ENV, "0")
    with pytest.raises(ValueError, match="DISTILL_PROGRESS_PERIOD=30"):
        P.period()
    monkeypatch.setenv(P.PERIOD_ENV, "2.5")
    assert P.period() == 2.5
    monkeypatch.setenv(P.MODE_ENV, "fancy")
    with pytest.raises(ValueError, match="auto, rich, plain, off"):
        P.mode()
    monkeypatch.setenv(P.MODE_ENV, "auto")
    assert P.mode() == ("rich" if sys.stderr.isatty() else "plain")


def test_toy_tokenizer_training_prints_no_bar(capfd):
    from toyworld.tokenizer import build_toy_tokenizer

    build_toy_tokenizer("gemma", ["a", "b", "c"], kind="word")
    build_toy_tokenizer("llama", ["a", "b", "c"], kind="bpe", vocab_size=40)
    out = capfd.readouterr()
    assert "Pre-processing" not in out.out + out.err


@pytest.mark.slow
def test_run_py_into_a_log_file_names_every_stage(tmp_path):
    """``python run.py > log 2>&1``: progress lines for every stage, nothing from Lightning's or the
    tokenizers' bars; ``logger=csv`` writes the evaluation scores."""
    log = tmp_path / "log"
    env = {**os.environ, "DISTILL_ROOT": str(tmp_path), P.PERIOD_ENV: "0.5", "PYTHONUNBUFFERED": "1"}
    env.pop(P.MODE_ENV, None)
    overrides = [*TINY, "trainer.enable_progress_bar=true"]
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "method=dpo", "logger=csv", *overrides],
                              cwd=tmp_path, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    progress_lines = [line for line in text.splitlines() if "[distill.progress]" in line]
    for stage in ("sft_student", "sft_teacher", "dpo_teacher", "distill/dpo", "generate"):
        assert any(f"] - [{stage}] " in line for line in progress_lines), stage
    assert any("[dpo_teacher] reference log-probs: done, 128/128 pairs" in line for line in progress_lines)
    assert any(re.search(r"\[sft_teacher\] training: done, 6/6 steps in .*, loss \d", line) for line in progress_lines)
    for foreign in ("Epoch 0/", "v_num", "Pre-processing sequences", "\r"):
        assert foreign not in text, foreign
    (metrics,) = (tmp_path / "logs" / "runs").glob("*/csv/*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    assert any(r.get("toy/win_rate") for r in rows) and any(r.get("reference/sft_teacher/toy/win_rate") for r in rows)


def test_rich_mode_shares_one_display_between_nested_tasks(lines, monkeypatch):
    monkeypatch.setenv(P.MODE_ENV, "rich")
    with P.Tracker("judge x", total=4, stage="judging") as outer:
        with P.Tracker("lm_eval toy_choice", total=2, stage="lm_eval") as inner:
            assert P._RICH.progress is not None and P._RICH.users == 2
            inner.advance(2)
        outer.advance(4, failed=1)
        assert P._RICH.users == 1
    assert P._RICH.progress is None  # the live display stops with its last task
    assert [line.split(":")[0] for line in lines] == ["[lm_eval] lm_eval toy_choice", "[judging] judge x"]
    assert lines[1].endswith("failed 1")


def test_a_stage_timer_speaks_only_while_none_of_its_steps_does(lines, monkeypatch):
    monkeypatch.setenv(P.PERIOD_ENV, "0.05")
    with P.stage("sft_teacher", timer=True):
        with P.Tracker("training", total=2, unit="steps") as t:
            lines.signal.clear()
            assert lines.signal.wait(timeout=30)
            t.advance(2)
        first = next(i for i, line in enumerate(lines) if line.startswith("[sft_teacher] training: "))
        inner = lines[first:]
        lines.signal.clear()
        assert lines.signal.wait(timeout=30)  # e.g. the model being saved: only the timer is left
        timer_line = lines[-1]
    assert all(line.startswith("[sft_teacher] training: ") for line in inner)
    assert re.fullmatch(r"\[sft_teacher\] building: elapsed \d:\d\d:\d\d", timer_line)
    assert re.fullmatch(r"\[sft_teacher\] building: done in \d:\d\d:\d\d", lines[-1])
