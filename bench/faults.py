"""Fault injection: kill runs and judges, feed bad inputs, and count what survives.

    python bench/faults.py                  # everything, TINY sizes (a few minutes on 2 cores)
    python bench/faults.py --skip-training  # without the three `python run.py` runs (seconds)
    python bench/faults.py --keep /tmp/f    # keep the working files there

Scenarios (each prints one row of the table):
  * training: `python run.py` (TINY toy world) SIGKILLed once the distillation stage has written a
    checkpoint; the same command resumes from it; the result must equal a run of the same command
    whose distillation was not interrupted (the distill artifact and its generations deleted and
    rebuilt; teachers and SFT student reused);
  * artifact build: a builder SIGKILLed mid-build while another process waits on the lock; the waiter
    builds it; three processes asking at once build once and read identical bytes;
  * judging (MT-Bench, Arena-Hard): the benchmark's own judging function with the HTTP judge and its
    disk cache, in a child process, against the local fake OpenAI-compatible server; the server holds
    the reply after N answered calls and the child is SIGKILLed; the rerun must ask nothing that was
    answered before (``judge calls repeated``) and end with every item judged (``items lost``);
  * transient judge faults (429, 500, timeout, a body that is not JSON, a reply without a verdict):
    retried with backoff and recovered; persistent ones: counted as failures, and above
    ``max_failure_share`` the benchmark stops with :class:`JudgeFailureRateError` naming the count;
  * a key on the command line (``+judge.api_key=<canary>``, another canary in ``OPENAI_API_KEY``):
    the run must stop before Hydra writes anything; the canaries must be in 0 files and 0 console
    lines (the three training runs also carry the environment canary, and their folders are searched);
  * corrupted artifacts (21 kinds: truncated, flipped, swapped or deleted weights, tokenizer and
    config files, unreadable or missing manifests, shortened, edited, emptied or reordered data and
    generation files, deleted artifacts, a killed build's leftovers, a truncated ``last.ckpt``): one
    TINY world is built, then for each kind a copy of its store is damaged and the same run is
    repeated in this process; each must be rebuilt (a warning naming it) or stopped by an error
    naming the file, with scores equal to the pristine run's (``silent``: different scores);
  * judgment files and the judge cache (10 kinds: an Arena-Hard ``judgments.jsonl`` shortened,
    emptied, with a line repeated, a question id edited, a game dropped, another run's questions, cut
    mid-line; a cache file that is no database, a cached reply cut short): the report's and the
    suite's pooled scoring read the files back; each must stop with an error naming the file, the
    missing or extra ids and the fix (``eval/benchmarks/coverage.py``), or ask the judge again;
  * bad inputs and bad configs (over 120 configs, composed and validated without training): each
    must get an error naming the file and line (or the key and a fix), or a counted skip;
    ``silent`` counts those that got neither, ``unnamed`` an error that names no key or file.

Exits 1 when a must-be-zero figure (judge calls repeated, items lost, silent bad inputs, runs not
recovered) is not zero.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
# the tests' tiny world (conf/experiment/smoke.yaml), with a distillation long enough to be killed mid-way
TINY = ["experiment=smoke", "stages.distill.steps=24", "checkpoint_every=3", "logger=none"]


@dataclass
class Outcome:
    scenario: str
    injected: int = 0          # faults injected
    recovered: int = 0         # runs (or items) that recovered
    expected: int = 0          # runs (or items) that should have recovered
    repeated: int | None = None  # judge calls repeated for items already judged (must be 0)
    lost: int | None = None      # items lost (must be 0)
    note: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.recovered == self.expected and not self.repeated and not self.lost


@dataclass
class BadInput:
    what: str
    reader: str
    outcome: str               # "error" | "counted" | "silent"
    message: str


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    inputs: list[BadInput] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        bad = [f"{o.scenario}: {o.recovered}/{o.expected} recovered, {o.repeated or 0} repeated, {o.lost or 0} lost"
               for o in self.outcomes if not o.ok]
        return bad + [f"bad input '{b.what}' ({b.reader}) was {b.outcome}" for b in self.inputs
                      if b.outcome in ("silent", "unnamed")]


# ============================================================================ training: SIGKILL and resume
ENV_CANARY = "sk-faults-env-canary-4e1b7d9c2a"   # in OPENAI_API_KEY of every run.py started here
CLI_CANARY = "sk-faults-cli-canary-8c3f0a6e5b"   # given on a command line


def _run_py(root: Path, log: Path, env_extra: dict | None = None, extra: list[str] = ()) -> subprocess.Popen:
    env = {**os.environ, "DISTILL_ROOT": str(root), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1",
           "OPENAI_API_KEY": ENV_CANARY, **(env_extra or {})}
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *TINY, *extra], cwd=root, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _result(root: Path) -> dict:
    paths = sorted((root / "results").glob("*.json"))
    return json.loads(paths[-1].read_text()) if paths else {}


def scenario_training(work: Path) -> Outcome:
    out = Outcome("training: SIGKILL mid-distillation, same command again", expected=1)
    root = work / "training"
    root.mkdir(parents=True)
    proc = _run_py(root, root / "killed.log")
    ckpt, deadline = None, time.time() + 900
    while ckpt is None and proc.poll() is None and time.time() < deadline:
        ckpt = next((root / "artifacts" / "distill").glob("*.work/ckpt/last.ckpt"), None)
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    if ckpt is None:
        out.note = "the run ended before distillation checkpointed"
        return out
    out.injected = 1
    half = [p.name for p in (root / "artifacts" / "distill").iterdir() if (p / "manifest.json").exists()]
    if half:
        out.note = f"a killed build published {half}"
        return out
    proc = _run_py(root, root / "resumed.log")
    if proc.wait(900) != 0:
        out.note = "the resumed run failed; see " + str(root / "resumed.log")
        return out
    log_text = (root / "resumed.log").read_text(errors="replace")
    step = re.search(r"resuming from .* \(step (\d+) of (\d+)\)", log_text)
    resumed = _result(root)
    # the uninterrupted reference: the same command with the distill artifact (and its generations) gone
    for d in (root / "artifacts" / "generate").iterdir():
        if (d / "manifest.json").exists() and json.loads((d / "manifest.json").read_text())["spec"]["stage"] == "distill":
            shutil.rmtree(d)
    shutil.rmtree(root / "artifacts" / "distill")
    shutil.rmtree(root / "results")
    proc = _run_py(root, root / "uninterrupted.log")
    if proc.wait(900) != 0:
        out.note = "the uninterrupted run failed"
        return out
    reference = _result(root)
    same = (resumed["artifacts"] == reference["artifacts"] and
            all(abs(resumed["scores"][k] - v) <= 1e-6 for k, v in reference["scores"].items()))
    n_eval = len((next(d for d in (root / "artifacts" / "generate").iterdir() if d.is_dir())
                  / "generations.jsonl").read_text().splitlines())
    out.recovered = int(bool(step) and same)
    out.lost = 0 if n_eval == 24 else 24 - n_eval
    out.note = (f"resumed at step {step.group(1)}/{step.group(2)}; " if step else "no resume logged; ") + \
               ("scores equal the uninterrupted run's" if same else
                f"scores differ: {resumed.get('scores')} vs {reference.get('scores')}")
    return out


# ============================================================================ artifacts: killed builder, concurrency
_BUILDER = r'''
import hashlib, json, sys, time
from pathlib import Path
from distill.artifacts import ArtifactStore
store, mode, tag, report = sys.argv[1:5]
def build(out, work):
    Path(report + ".started").write_text(tag)
    with open(out / "blob.bin", "wb") as fh:
        for i in range(8):
            fh.write(bytes([i]) * 65536); fh.flush()
            time.sleep(60 if mode == "slow" and i == 3 else 0.05)
art = ArtifactStore(store).get_or_build("stage", {"k": 1}, build)
blob = (art.path / "blob.bin").read_bytes()
Path(report).write_text(json.dumps({"reused": art.reused, "sha": hashlib.sha256(blob).hexdigest(), "size": len(blob)}))
'''


def _builder(work: Path, store: Path, mode: str, tag: str) -> tuple[subprocess.Popen, Path]:
    script = work / "builder.py"
    script.write_text(_BUILDER)
    report = work / f"{tag}.json"
    return subprocess.Popen([sys.executable, str(script), str(store), mode, tag, str(report)], cwd=ROOT,
                            start_new_session=True), report


def scenario_artifact_kill(work: Path) -> Outcome:
    out = Outcome("artifact build: builder SIGKILLed, a waiting process takes over", expected=1)
    work = work / "artifact_kill"
    work.mkdir(parents=True)
    slow, _ = _builder(work, work / "store", "slow", "killed")
    while not (work / "killed.json.started").exists():
        time.sleep(0.02)
    waiter, report = _builder(work, work / "store", "fast", "waiter")
    time.sleep(1.0)
    waited = waiter.poll() is None
    os.killpg(slow.pid, signal.SIGKILL)
    slow.wait(10)
    out.injected = 1
    ok = waiter.wait(60) == 0 and report.exists()
    got = json.loads(report.read_text()) if ok else {}
    stage = work / "store" / "stage"
    leftovers = [p.name for p in stage.iterdir() if ".tmp-" in p.name]
    out.recovered = int(ok and waited and not got.get("reused") and got.get("size") == 8 * 65536 and not leftovers)
    out.lost = 0 if got.get("size") == 8 * 65536 else 1
    out.note = (f"waiter blocked on the lock: {waited}; rebuilt {got.get('size', 0)} bytes; "
                f"temporary dirs left: {len(leftovers)}")
    return out


def scenario_artifact_concurrency(work: Path) -> Outcome:
    out = Outcome("artifact build: 3 processes ask for one artifact at once", expected=3)
    work = work / "artifact_race"
    work.mkdir(parents=True)
    procs = [_builder(work, work / "store", "fast", f"p{i}") for i in range(3)]
    codes = [p.wait(120) for p, _ in procs]
    reports = [json.loads(r.read_text()) for _, r in procs if r.exists()]
    builds = len(list(work.glob("*.started")))
    digests = {(r["sha"], r["size"]) for r in reports}
    out.recovered = sum(c == 0 for c in codes) if builds == 1 and len(digests) == 1 else 0
    out.lost = 3 - len(reports)
    out.note = f"built {builds}x, reused {sum(r['reused'] for r in reports)}x, identical bytes: {len(digests) == 1}"
    return out


# ============================================================================ judging: SIGKILL and rerun
def _mt_bench_data(n: int = 10) -> dict:
    cats = ["writing", "math", "roleplay", "reasoning", "stem"]
    questions = [{"question_id": 100 + i, "category": cats[i % len(cats)],
                  "turns": [f"sort : {' '.join('dcba'[: 2 + i % 3])}", f"reverse : it ({i})"]} for i in range(n)]
    answers = {q["question_id"]: {"question_id": q["question_id"], "model_id": "toy-student",
                                  "choices": [{"index": 0, "turns": [f"[ a b {'c ' * (i % 4)}]", "b a"]}]}
               for i, q in enumerate(questions)}
    refs = {q["question_id"]: {"question_id": q["question_id"], "choices": [{"turns": ["[ a b ]", "b a"]}]}
            for q in questions}
    single = "[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
    multi = ("<|The Start of Assistant A's Conversation with User|>\n{question_1}\n{answer_1}\n{question_2}\n"
             "{answer_2}\n<|The End of Assistant A's Conversation with User|>")
    ref = "\n[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]"
    ref2 = "\n[Reference]\n{ref_answer_1}\n{ref_answer_2}"
    prompts = {"single-v1": single, "single-v1-multi-turn": multi, "single-math-v1": single + ref,
               "single-math-v1-multi-turn": multi + ref2}
    prompts = {k: {"name": k, "system_prompt": "Rate the response on a scale of 1 to 10 as [[rating]].",
                   "prompt_template": v} for k, v in prompts.items()}
    return {"questions": questions, "answers": answers, "refs": refs, "prompts": prompts}


def _arena_data(n: int = 8):
    from eval.benchmarks.arena_hard import ArenaJudgeConfig

    config = ArenaJudgeConfig(
        judge_model="fake-judge", baseline_model="gpt-4-0314", temperature=0.0, max_tokens=64,
        regex_pattern=r"\[\[([AB<>=]+)\]\]", number_of_judgment_attempts=2,
        system_prompt="Compare the two answers; end with a verdict such as [[A>B]].",
        prompt_template=("<|User Prompt|>\n{question_1}\n\n<|Assistant A|>\n{answer_1}\n\n<|Assistant B|>\n{answer_2}",))
    questions = [{"question_id": f"q{i}", "category": "toy", "cluster": "toy",
                  "turns": [{"content": f"sort : {' '.join('edcba'[: 2 + i % 4])}"}]} for i in range(n)]

    def answer(model, i, text):
        return {"question_id": f"q{i}", "model_id": model, "choices": [{"index": 0, "turns": [{"content": text}]}]}

    answers = {f"q{i}": answer("toy-student", i, f"[ {'a ' * (1 + i % 3)}]") for i in range(n)}
    baseline = {f"q{i}": answer("gpt-4-0314", i, "a b") for i in range(n)}
    return config, questions, answers, baseline


def oracle_verdict(body: dict) -> str:
    """The fake server's judge: a deterministic function of the request. Arena-Hard games whose
    question number is odd get no verdict at first, so the benchmark asks to continue."""
    messages = body["messages"]
    user = messages[1]["content"]
    if "<|Assistant A|>" in user:
        if len(messages) == 2 and int(re.search(r"sort : ((?:\w ?)+)", user).group(1).count(" ")) % 2 == 1:
            return "Both are close; let me look again."
        return "[[B>A]]" if user.index("[ a") > user.index("<|Assistant B|>") else "[[A>B]]"
    return f"Rating: [[{1 + len(user) % 10}]]"


def _judge_child(bench: str, base_url: str, cache: str, out: str) -> None:
    """The judging process (a child of this script): judge everything, write the judgments."""
    from eval.benchmarks import write_jsonl
    from eval.judges.http import HTTPJudge

    judge = HTTPJudge("fake-judge", base_url=base_url, api_key_env=None, cache=cache, max_concurrency=3,
                      backoff_base_s=0.01, backoff_max_s=0.05, timeout_s=30)
    if bench == "mt_bench":
        from eval.benchmarks import mt_bench as mt

        d = _mt_bench_data()
        rows = mt.judge_answers(judge, d["prompts"], d["questions"], d["answers"], d["refs"])
    else:
        from eval.benchmarks import arena_hard as ah

        rows = ah.judge_games(judge, *_arena_data())
    write_jsonl(out, rows)


class HoldingServer:
    """The fake judge server, answering with :func:`oracle_verdict` until ``hold_after`` calls have
    been answered; later calls wait (never answered while held)."""

    def __init__(self, hold_after: int | None):
        from eval.judges.fake_server import FakeJudgeServer

        self.hold_after, self.answered, self.release = hold_after, [], threading.Event()
        self._lock = threading.Lock()
        self.server = FakeJudgeServer(self._answer)

    def _answer(self, body: dict) -> str:
        with self._lock:
            held = self.hold_after is not None and len(self.answered) >= self.hold_after
            if not held:
                self.answered.append(body)
        if held:
            self.release.wait(120)
            raise RuntimeError("held past the kill")
        return oracle_verdict(body)

    def __enter__(self) -> "HoldingServer":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.stop()


def _cached(cache: Path) -> int:
    if not cache.exists():
        return 0
    with sqlite3.connect(cache) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def _key(body: dict) -> str:
    return json.dumps(body["messages"], sort_keys=True)


def scenario_judge_kill(work: Path, bench: str, kill_after: int = 7) -> Outcome:
    """Judge ``bench`` in a child; SIGKILL it once ``kill_after`` replies are in the cache; rerun."""
    name = {"mt_bench": "MT-Bench", "arena_hard": "Arena-Hard"}[bench]
    out = Outcome(f"judging {name}: SIGKILL after {kill_after} judge replies, rerun", expected=1)
    work = work / f"judge_{bench}"
    work.mkdir(parents=True)
    cache, result = work / "judge.sqlite", work / "judgments.jsonl"
    cmd = [sys.executable, str(Path(__file__).resolve()), "_judge-child", bench]
    with HoldingServer(kill_after) as held:
        child = subprocess.Popen([*cmd, held.server.base_url, str(cache), str(result)], cwd=ROOT,
                                 start_new_session=True)
        deadline = time.time() + 120
        while not (held.server.calls > kill_after and _cached(cache) >= kill_after):
            if child.poll() is not None or time.time() > deadline:
                out.note = f"the child ended (rc {child.returncode}) before the kill"
                return out
            time.sleep(0.02)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
        out.injected = 1
        answered = {_key(b) for b in held.answered}
    with HoldingServer(None) as rerun:
        child = subprocess.Popen([*cmd, rerun.server.base_url, str(cache), str(result)], cwd=ROOT)
        rc = child.wait(300)
        asked = [_key(b) for b in rerun.answered]
    rows = [json.loads(line) for line in result.read_text().splitlines()] if result.exists() else []
    if bench == "mt_bench":
        expected = 2 * len(_mt_bench_data()["questions"])
        judged = sum(1 for r in rows if r["score"] != -1)
    else:
        expected = 2 * len(_arena_data()[1])
        judged = sum(1 for r in rows for g in r["games"] if g["score"] is not None)
    out.repeated = sum(k in answered for k in asked)
    out.lost = expected - judged
    out.recovered = int(rc == 0 and out.lost == 0)
    out.note = (f"first run: {len(answered)} replies before the kill; rerun: {len(asked)} new calls; "
                f"{judged}/{expected} items judged")
    return out


# ============================================================================ judging: transient and persistent faults
def scenario_judge_transient(work: Path) -> Outcome:
    from eval.benchmarks import mt_bench as mt
    from eval.judges.fake_server import FakeJudgeServer
    from eval.judges.http import HTTPJudge

    faults = [("429", 2), ("500", 2), ("delay", 1), ("bad_json", 1), ("malformed", 2)]
    out = Outcome("judging MT-Bench: " + ", ".join(f"{k}x{n}" for k, n in faults), expected=1)
    d = _mt_bench_data(4)
    with FakeJudgeServer(oracle_verdict, delay_s=1.0) as server:
        judge = HTTPJudge("fake-judge", base_url=server.base_url, api_key_env=None, max_concurrency=1,
                          backoff_base_s=0.01, backoff_max_s=0.05, timeout_s=0.4, invalid_retries=2,
                          cache=work / "transient.sqlite")
        for kind, n in faults:
            server.inject(kind, n)
        rows = mt.judge_answers(judge, d["prompts"], d["questions"], d["answers"], d["refs"], retry_unparsed=True)
    out.injected = sum(n for _, n in faults)
    s = judge.stats
    out.lost = sum(r["score"] == -1 for r in rows)
    out.recovered = int(s.retries == out.injected and s.failures == 0 and out.lost == 0)
    out.note = f"{s.retries} retries with backoff, {s.failures} failures, {s.api_calls} replies"
    return out


def scenario_judge_persistent(work: Path) -> tuple[Outcome, Outcome]:
    from eval.benchmarks import mt_bench as mt
    from eval.judges.base import JudgeFailureRateError
    from eval.judges.fake_server import FakeJudgeServer
    from eval.judges.http import HTTPJudge

    d = _mt_bench_data(4)  # 8 judge requests
    results = []
    for failing, share in ((1, 0.25), (3, 0.25)):
        out = Outcome(f"judging MT-Bench: {failing} of 8 requests fail every retry (max share {share:.0%})",
                      expected=1)
        with FakeJudgeServer(oracle_verdict) as server:
            judge = HTTPJudge("fake-judge", base_url=server.base_url, api_key_env=None, max_concurrency=1,
                              max_retries=1, backoff_base_s=0.01, backoff_max_s=0.02, max_failure_share=share)
            server.inject("500", 2 * failing)  # each failing request uses its attempt and its one retry
            try:
                rows = mt.judge_answers(judge, d["prompts"], d["questions"], d["answers"], d["refs"])
                scored = mt.score_judgments(rows, d["questions"])
                out.recovered = int(judge.stats.failures == failing and scored["n_dropped"] == failing)
                out.lost = 8 - scored["n_scored"] - scored["n_dropped"]  # neither scored nor counted
                out.note = f"counted: {judge.stats.failures} failures, n_dropped={scored['n_dropped']}"
            except JudgeFailureRateError as e:
                out.recovered = int(f"{failing} of 8 requests failed" in str(e))
                out.lost = 0
                out.note = "stopped: " + str(e).split(";")[0]
        out.injected = 2 * failing
        results.append(out)
    return tuple(results)


# ============================================================================ corruption of reused artifacts
def _digest_tree(d: Path) -> dict:
    return {str(p.relative_to(d)): p.stat().st_size for p in sorted(d.rglob("*")) if p.is_file()}


def _one(store: Path, stage: str, pick=None) -> Path:
    dirs = sorted(p for p in (store / stage).iterdir() if (p / "manifest.json").exists())
    if pick:
        dirs = [d for d in dirs if pick(json.loads((d / "manifest.json").read_text()))]
    return dirs[0]


def _gen_of(stage: str):
    return lambda m: m["spec"].get("stage") == stage


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip(path: Path, at: float = 0.6) -> None:
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _lines(path: Path, fn) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(fn(lines)))


def _answers_perfect(path: Path) -> None:
    """Edit every response into the oracle's answer (the 'win rate 100' edit)."""
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, "response": "[ " + " ".join(r["answer"]) + " ]"}) + "\n" for r in rows))


def _corruptions(store: Path) -> list[tuple[str, Callable[[], object]]]:
    """(what, damage) pairs; each damage acts on a fresh copy of the pristine store."""
    a = lambda stage, pick=None: _one(store, stage, pick)  # noqa: E731
    model = lambda stage: a(stage) / "model"  # noqa: E731
    gen = lambda stage: a("generate", _gen_of(stage)) / "generations.jsonl"  # noqa: E731
    return [
        ("sft_student weights truncated to half", lambda: _truncate(model("sft_student") / "model.safetensors")),
        ("dpo_teacher weights deleted", lambda: (model("dpo_teacher") / "model.safetensors").unlink()),
        ("distill weights: one byte flipped (same size)", lambda: _flip(model("distill") / "model.safetensors")),
        ("sft_teacher weights replaced by the dpo_teacher's (same size)", lambda: shutil.copy(
            model("dpo_teacher") / "model.safetensors", model("sft_teacher") / "model.safetensors")),
        ("sft_teacher config.json: one byte flipped (same size)", lambda: _flip(model("sft_teacher") / "config.json",
                                                                                0.5)),
        ("sft_student tokenizer.json truncated", lambda: _truncate(model("sft_student") / "tokenizer.json")),
        ("distill tokenizer files deleted", lambda: [p.unlink() for p in model("distill").glob("tokenizer*")]),
        ("data manifest.json not JSON", lambda: (a("data") / "manifest.json").write_text("{\"stage\": ")),
        ("dpo_teacher manifest.json without its checksums", lambda: (a("dpo_teacher") / "manifest.json").write_text(
            json.dumps({k: v for k, v in json.loads((a("dpo_teacher") / "manifest.json").read_text()).items()
                        if k != "checksums"}))),
        ("sft_student manifest.json deleted", lambda: (a("sft_student") / "manifest.json").unlink()),
        ("data sft.jsonl: half its lines deleted", lambda: _lines(a("data") / "sft.jsonl", lambda x: x[: len(x) // 2])),
        ("data eval.jsonl: one answer edited (same size)", lambda: (a("data") / "eval.jsonl").write_text(
            (a("data") / "eval.jsonl").read_text().replace('"a"', '"b"', 1))),
        ("data pairs.jsonl: garbage appended", lambda: open(a("data") / "pairs.jsonl", "a").write("{oops\n")),
        ("student generations: half the lines deleted", lambda: _lines(gen("distill"), lambda x: x[: len(x) // 2])),
        ("student generations: every answer edited to the right one", lambda: _answers_perfect(gen("distill"))),
        ("SFT-student generations emptied (0 bytes)", lambda: gen("sft_student").write_text("")),
        ("teacher generations: two lines swapped (same size)", lambda: _lines(
            gen("dpo_teacher"), lambda x: [x[1], x[0], *x[2:]])),
        ("a whole sft_teacher artifact deleted", lambda: shutil.rmtree(a("sft_teacher"))),
        ("a killed build's temporary folder left beside a missing artifact", lambda: os.replace(
            a("dpo_teacher"), a("dpo_teacher").with_name(a("dpo_teacher").name + ".tmp-99999"))),
        ("truncated last.ckpt of an unfinished distillation", lambda: _half_checkpoint(a("distill"))),
        ("an artifact folder replaced by an empty file", lambda: _replace_by_file(a("sft_student"))),
    ]


def _replace_by_file(art: Path) -> None:
    shutil.rmtree(art)
    art.write_bytes(b"")


def _half_checkpoint(art: Path) -> None:
    """The distill artifact gone and its work folder holding a truncated last.ckpt (a full disk)."""
    work = art.with_name(art.name + ".work") / "ckpt"
    work.mkdir(parents=True)
    shutil.rmtree(art)
    (work / "last.ckpt").write_bytes(b"PK\x03\x04" + b"\x00" * 512)


def scenario_corruption(work: Path) -> tuple[Outcome, list[BadInput]]:
    """Build one TINY world, then for each corruption: a fresh copy of its store, the damage, the same
    run again in this process (as a new process would: nothing verified yet). Each must be rebuilt
    (a warning naming it) or stop with an error naming the file; the scores must equal the pristine run's."""
    from distill import artifacts as A
    from distill.files import compose_config
    from distill.pipeline import run

    out = Outcome("corrupted artifacts: damage one, run the same command again")
    base = work / "corruption"

    def cfg_for(root: Path):
        return compose_config(TINY, root)

    def attempt(root: Path) -> tuple[dict | None, str | None, list[str]]:
        A._VERIFIED.clear()
        logs: list[str] = []

        class Grab(logging.Handler):
            def emit(self, record):
                if record.levelno >= logging.WARNING:
                    logs.append(record.getMessage())

        h, lg = Grab(), logging.getLogger("distill")
        level = lg.level
        lg.addHandler(h)
        lg.setLevel(logging.WARNING)  # whatever the root logger lets through
        try:
            run(cfg_for(root))
            return _result(root), None, logs
        except Exception as e:  # noqa: BLE001 - classifying every outcome is the point
            return None, f"{type(e).__name__}: {e}", logs
        finally:
            lg.removeHandler(h)
            lg.setLevel(level)

    pristine_root = base / "pristine"
    pristine, err, _ = attempt(pristine_root)
    if pristine is None:
        out.note = f"the pristine run failed: {err}"
        return out, []
    rows = []
    for i, (what, _) in enumerate(_corruptions(pristine_root / "artifacts")):
        root = base / f"case{i:02d}"
        shutil.copytree(pristine_root / "artifacts", root / "artifacts")
        _corruptions(root / "artifacts")[i][1]()  # the same damage, on this copy
        got, err, logs = attempt(root)
        named = [m for m in logs if str(root) in m or "artifacts/" in m]
        if got is not None and got["scores"] == pristine["scores"] and got["references"] == pristine["references"]:
            outcome = "rebuilt" if named else "recovered"
            msg = (named[0] if named else "rebuilt what was missing, no warning needed; scores equal the pristine run")
        elif got is not None:
            outcome, msg = "silent", f"scores differ: {got['scores']} vs {pristine['scores']}"
        else:
            outcome = "error" if re.search(r"/[\w.\-/]+\.(jsonl?|safetensors|ckpt)|artifacts/", err) else "unnamed"
            msg = err
        rows.append(BadInput(what, "reused artifact", outcome, msg.replace(f"{root}{os.sep}", "")))
        shutil.rmtree(root, ignore_errors=True)
    out.injected = out.expected = len(rows)
    out.recovered = sum(r.outcome in ("rebuilt", "recovered", "error") for r in rows)
    out.lost = sum(r.outcome in ("silent", "unnamed") for r in rows)
    out.note = (f"{sum(r.outcome == 'rebuilt' for r in rows)} rebuilt with a warning, "
                f"{sum(r.outcome == 'recovered' for r in rows)} rebuilt (missing), "
                f"{sum(r.outcome == 'error' for r in rows)} named errors, "
                f"{sum(r.outcome == 'silent' for r in rows)} silently wrong")
    return out, rows


# ============================================================================ judgment files and the judge cache
def _judgment_world(d: Path, n: int = 6) -> list[dict]:
    """Two models' Arena-Hard answers and judgments (files as the suite writes them) and the report's
    records pointing at them."""
    from eval.benchmarks import arena_hard as ah

    records = []
    for k, model in enumerate(("dpo", "adpa")):
        answers = [ah.make_answer_row(f"q{i}", model, "[ a b ]", 4) for i in range(n)]
        a = ah.write_answers(d / model / "model_answer.jsonl", answers)
        rows = [{"question_id": f"q{i}", "model": model, "judge": "oracle",
                 "games": [{"score": ("B>A", "A>B", "A=B")[(i + k) % 3]}, {"score": ("A>B", "B>A")[(i + k) % 2]}]}
                for i in range(n)]
        j = ah.write_judgments(d / model / "judgments.jsonl", rows)
        records.append({"method": model, "model": "gemma", "seed": 0,
                        "scores": {"eval/arena_hard/score": 50.0, "eval/arena_hard/score_ci_low": 40.0,
                                   "eval/arena_hard/score_ci_high": 60.0, "eval/arena_hard/ci_n_models": 1.0},
                        "benchmarks": {"student": {"arena_hard": {"answers": str(a), "judgments": str(j),
                                                                  "baseline": "base", "n_bootstrap": 20}}}})
    return records


def _suite_pool(records: list[dict]):
    from eval.suite import BenchmarkResult, pool_arena_hard

    return pool_arena_hard({r["method"]: {"arena_hard": BenchmarkResult(
        "arena_hard", {"score": 50.0}, dict(r["benchmarks"]["student"]["arena_hard"]), [])} for r in records})


def _report_pool(records: list[dict]):
    from eval.report import pool_arena_hard

    return pool_arena_hard(records)


def _edit_rows(path: Path, fn) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    path.write_text("".join(json.dumps(r) + "\n" for r in fn(rows)))


def judgment_corruptions(work: Path) -> list[BadInput]:
    """Damage a judgment file (or the judge cache) the scoring reads back, then score: each must stop
    with an error naming the file and the fix (or, for a damaged cached reply, ask the judge again)."""
    from eval.judges.cache import JudgeCache

    base = work / "judgments"
    judg = lambda d: d / "adpa" / "judgments.jsonl"  # noqa: E731
    cases: list[tuple[str, str, Callable[[Path], None], Callable]] = [
        ("Arena-Hard judgments: last line deleted", "eval.report.pool_arena_hard",
         lambda d: _lines(judg(d), lambda x: x[:-1]), _report_pool),
        ("Arena-Hard judgments: emptied (0 bytes)", "eval.report.pool_arena_hard",
         lambda d: judg(d).write_text(""), _report_pool),
        ("Arena-Hard judgments: one line repeated", "eval.report.pool_arena_hard",
         lambda d: _lines(judg(d), lambda x: [*x, x[0]]), _report_pool),
        ("Arena-Hard judgments: a question id edited", "eval.report.pool_arena_hard",
         lambda d: _edit_rows(judg(d), lambda r: [{**x, "question_id": "q99"} if i == 2 else x
                                                  for i, x in enumerate(r)]), _report_pool),
        ("Arena-Hard judgments: one game of a question dropped", "eval.report.pool_arena_hard",
         lambda d: _edit_rows(judg(d), lambda r: [{**x, "games": x["games"][:1]} if i == 0 else x
                                                  for i, x in enumerate(r)]), _report_pool),
        ("Arena-Hard judgments: half the lines deleted", "eval.suite.pool_arena_hard",
         lambda d: _lines(judg(d), lambda x: x[: len(x) // 2]), _suite_pool),
        ("Arena-Hard judgments: another run's file (other questions) copied in", "eval.suite.pool_arena_hard",
         lambda d: _edit_rows(judg(d), lambda r: [{**x, "question_id": f"z{i}"} for i, x in enumerate(r)]),
         _suite_pool),
        ("Arena-Hard judgments: truncated mid-line", "eval.suite.pool_arena_hard",
         lambda d: _truncate(judg(d), 0.7), _suite_pool),
    ]
    out = []
    for i, (what, reader, damage, score) in enumerate(cases):
        d = base / f"case{i:02d}"
        records = _judgment_world(d)
        damage(d)
        try:
            _, logs = _capture("eval", lambda: score(records))
            named = [m for m in logs if "judgments.jsonl" in m]
            out.append(BadInput(what, reader, "counted" if named else "silent",
                                named[0] if named else "scored without a word"))
        except Exception as e:  # noqa: BLE001 - classifying every outcome is the point
            msg = f"{type(e).__name__}: {e}"
            good = "judgments.jsonl" in str(e) and ("fix" in str(e) or re.search(r"\.jsonl?(:\d+|, (line|row) \d+)",
                                                                                  str(e)))
            out.append(BadInput(what, reader, "error" if good else "unnamed", msg))

    # the judge cache (SQLite): an unreadable file is named; a damaged reply is asked again and replaced
    cache = base / "cache" / "judge.sqlite"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"this is no database " * 64)
    try:
        JudgeCache(cache).close()
        out.append(BadInput("judge cache: not an SQLite file", "eval.judges.cache", "silent", "opened"))
    except Exception as e:  # noqa: BLE001
        named = str(cache) in str(e) and "fix" in str(e)
        out.append(BadInput("judge cache: not an SQLite file", "eval.judges.cache", "error" if named else "unnamed",
                            f"{type(e).__name__}: {e}"))
    cache2 = base / "cache" / "judge2.sqlite"
    with JudgeCache(cache2) as c:
        c.put("judge", {"q": 1}, {"text": "[[5]]"})
        c._db.execute("UPDATE replies SET reply = '{\"text\": '")
        got, logs = _capture("eval.judges.cache", lambda: c.get("judge", {"q": 1}))
    out.append(BadInput("judge cache: one cached reply cut short", "eval.judges.cache",
                        "rebuilt" if got is None and any(str(cache2) in m for m in logs) else "silent",
                        (logs[0] if logs else f"returned {got!r}") + " (the judge is asked again)"))
    return out


# ============================================================================ a key on the command line
def _canary_hits(root: Path, console: str, canaries: tuple[str, ...]) -> tuple[int, int, int]:
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    hits = sum(any(c.encode() in p.read_bytes() for c in canaries) for p in files)
    lines = sum(any(c in line for c in canaries) for line in console.splitlines())
    return len(files), hits, lines


def scenario_cli_key(work: Path) -> Outcome:
    """`python run.py +judge.api_key=<canary>` (and the env canary): stopped before Hydra writes anything."""
    out = Outcome("canary key on the command line (and in the environment)", expected=1)
    root = work / "cli_key"
    root.mkdir(parents=True)
    proc = _run_py(root, root.parent / "cli_key.log", extra=["logger=none", f"+judge.api_key={CLI_CANARY}"])
    code = proc.wait(120)
    console = (root.parent / "cli_key.log").read_text(errors="replace")
    n_files, hits, lines = _canary_hits(root, console, (CLI_CANARY, ENV_CANARY))
    out.injected = 1
    out.recovered = int(code == 2 and n_files == 0 and hits == 0 and lines == 0 and "api_key_env" in console)
    out.lost = hits + lines
    out.note = f"exit {code}; {n_files} files written, {hits} with a canary; {lines} console lines with a canary"
    return out


# ============================================================================ bad inputs and configs
def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def bad_inputs(work: Path) -> list[BadInput]:
    """Feed each reader a broken file; classify what it did."""
    from distill import data as D
    from eval.benchmarks import alpaca_eval2 as ae
    from eval.benchmarks import arena_hard as ah
    from eval.benchmarks import mt_bench as mt

    work = work / "inputs"
    work.mkdir(parents=True)
    ok_pair = '{"prompt": [{"role": "user", "content": "sort : b a"}], "chosen": "[ a b ]", "rejected": "a b"}\n'
    ok_q = '{"question_id": 1, "category": "writing", "turns": ["a", "b"]}\n'
    cases: list[tuple[str, str, Callable[[], object]]] = [
        ("invalid JSON line", "distill.data.read_jsonl",
         lambda: D.read_jsonl(_write(work / "pairs_json.jsonl", ok_pair + '{"prompt": [\n'), "pairs")),
        ("a line that is not an object", "distill.data.read_jsonl",
         lambda: D.read_jsonl(_write(work / "pairs_list.jsonl", ok_pair + "[1, 2]\n"), "pairs")),
        ("missing field", "distill.data.read_jsonl",
         lambda: D.read_jsonl(_write(work / "pairs_missing.jsonl", ok_pair + '{"prompt": [], "chosen": "x"}\n'),
                              "pairs")),
        ("non-UTF-8 bytes", "distill.data.read_jsonl",
         lambda: D.read_jsonl(_write(work / "sft_bytes.jsonl", ok_pair.encode() + b'{"messages": "\xff\xfe"}\n'),
                              "pairs")),
        ("empty chosen response", "distill.data.read_jsonl",
         lambda: D.read_jsonl(_write(work / "pairs_empty.jsonl", ok_pair + ok_pair.replace("[ a b ]", " ")),
                              "pairs")),
        ("messages of the wrong type", "distill.data.read_jsonl",
         lambda: D.read_jsonl(_write(work / "sft_type.jsonl", '{"messages": "hello"}\n'), "sft")),
        ("MT-Bench question file, non-UTF-8", "eval mt_bench.load_questions",
         lambda: mt.load_questions(_write(work / "question.jsonl", ok_q.encode() + b'{"turns": ["\xe9t\xe9"]}\n'))),
        ("MT-Bench question without turns", "eval mt_bench.load_questions",
         lambda: mt.load_questions(_write(work / "question2.jsonl", ok_q + '{"question_id": 2, "category": "x"}\n'))),
        ("MT-Bench reference answer without question_id", "eval mt_bench.load_reference_answers",
         lambda: mt.load_reference_answers(_write(work / "gpt-4.jsonl", '{"choices": [{"turns": ["x"]}]}\n'))),
        ("Arena-Hard answer without question_id", "eval arena_hard.read_answers",
         lambda: ah.read_answers(_write(work / "m.jsonl", '{"choices": [{"turns": [{"content": "x"}]}]}\n'))),
        ("AlpacaEval outputs, non-UTF-8", "eval alpaca_eval2.read_model_outputs",
         lambda: ae.read_model_outputs(_write(work / "outputs.json", b'[\n {"instruction": "\xff"}\n]\n'))),
        ("AlpacaEval outputs, invalid JSON", "eval alpaca_eval2.read_model_outputs",
         lambda: ae.read_model_outputs(_write(work / "outputs2.json", '[\n {"instruction": "a",}\n]\n'))),
        ("an empty data file", "distill.data.read_jsonl", lambda: D.read_jsonl(_write(work / "empty.jsonl", ""), "sft")),
        ("SFT row ending with a user turn", "distill.data.read_jsonl", lambda: D.read_jsonl(_write(
            work / "sft_user.jsonl", json.dumps({"messages": [{"role": "user", "content": "a"},
                                                              {"role": "assistant", "content": "b"},
                                                              {"role": "user", "content": "c"}]}) + "\n"), "sft")),
        ("an unknown role", "distill.data.read_jsonl", lambda: D.read_jsonl(_write(
            work / "sft_role.jsonl", json.dumps({"messages": [{"role": "robot", "content": "a"},
                                                              {"role": "assistant", "content": "b"}]}) + "\n"), "sft")),
        ("an empty prompt", "distill.data.read_jsonl", lambda: D.read_jsonl(_write(
            work / "prompts_empty.jsonl", '{"prompt": [{"role": "user", "content": "  "}]}\n'), "prompts")),
        ("a 100k-deep JSON line", "distill.data.read_jsonl", lambda: D.read_jsonl(_write(
            work / "deep.jsonl", '{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n"), "prompts")),
        ("a generation file shorter than the prompts", "distill.results.check_answers",
         lambda: _short_generations(work)),
    ]
    out = []
    for what, reader, fn in cases:
        try:
            fn()
            out.append(BadInput(what, reader, "silent", "accepted without a word"))
        except Exception as e:  # noqa: BLE001 - classifying every outcome is the point
            msg = f"{type(e).__name__}: {e}"
            named = re.search(r"\.jsonl?(:\d+|: |, (line|row) \d+)", str(e))
            out.append(BadInput(what, reader, "error" if named else "silent", msg))
    out += [_truncation(), _unparsed_verdicts(), _missing_answer()]
    return out


def _short_generations(work: Path):
    from distill.results import check_answers

    prompts = [{"prompt": [{"role": "user", "content": f"sort : {c} a"}]} for c in "bcd"]
    path = _write(work / "generations.jsonl", "".join(json.dumps({**p, "response": "x"}) + "\n" for p in prompts[:2]))
    from distill.data import read_jsonl

    return check_answers(read_jsonl(path), prompts, path)


def _capture(logger: str, fn: Callable[[], object]) -> tuple[object, list[str]]:
    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    lg, handler = logging.getLogger(logger), Grab()
    level, propagate = lg.level, lg.propagate
    lg.addHandler(handler)
    lg.setLevel(logging.WARNING)
    lg.propagate = False
    try:
        return fn(), records
    finally:
        lg.removeHandler(handler)
        lg.setLevel(level)
        lg.propagate = propagate


def _truncation() -> BadInput:
    from distill import data as D
    from toyworld.task import ToyTask
    from toyworld.tokenizer import build_toy_tokenizer

    tok = build_toy_tokenizer("llama", ToyTask().corpus())
    long_prompt = [{"role": "user", "content": "sort : " + " ".join(["a", "b", "c"] * 30)}]
    rows = [{"prompt": long_prompt, "chosen": "[ a b ]", "rejected": "a b"}]
    enc, logs = _capture("distill.data", lambda: D.encode_pairs(tok, rows, 40))
    fits = all(len(s["input_ids"]) <= 40 for s in enc[0]["seqs"])
    counted = [m for m in logs if "truncated 2 of 2 sequences to max_length=40" in m]
    return BadInput("prompt longer than the context (max_length=40)", "distill.data.encode_pairs",
                    "counted" if counted and fits else "silent", counted[0] if counted else "no warning")


def _unparsed_verdicts() -> BadInput:
    from eval.benchmarks import mt_bench as mt
    from eval.judges.base import FunctionJudge

    d = _mt_bench_data(2)
    judge = FunctionJudge(lambda messages, **kw: "I cannot rate this.")
    rows = mt.judge_answers(judge, d["prompts"], d["questions"], d["answers"], d["refs"])
    s, logs = _capture("eval.benchmarks.mt_bench", lambda: mt.score_judgments(rows, d["questions"]))
    counted = s["n_dropped"] == 4 and any("4 of 4 judgments had no score" in m for m in logs)
    return BadInput("judge replies without a [[rating]]", "eval mt_bench.score_judgments",
                    "counted" if counted else "silent", f"n_dropped={s['n_dropped']}; " + (logs[0] if logs else ""))


def _missing_answer() -> BadInput:
    from eval.benchmarks import mt_bench as mt
    from eval.judges.base import FunctionJudge

    d = _mt_bench_data(3)
    answers = dict(list(d["answers"].items())[:2])
    rows, logs = _capture("eval.benchmarks.mt_bench", lambda: mt.judge_answers(
        FunctionJudge(lambda messages, **kw: "[[5]]"), d["prompts"], d["questions"], answers, d["refs"]))
    warned = [m for m in logs if "no answer to question" in m]
    return BadInput("a question the model did not answer", "eval mt_bench.judge_answers",
                    "counted" if len(warned) == 1 and len(rows) == 4 else "silent",
                    (warned[0] if warned else "no warning") + " (FastChat skips it too)")


def _bad_config_cases(unset_env: str) -> list[tuple[list[str], str]]:
    """(overrides, the key the error must name): the issue's list, then bad values of every checked key."""
    cases: list[tuple[list[str], str]] = [
        (["seed=abc"], "seed"), (["data.sizes.sft=0"], "data.sizes.sft"),
        (["optimizer.weight_decay=-1"], "optimizer.weight_decay"), (["trainer.devices=0"], "trainer.devices"),
        (["model.student.toy.hidden_size=31"], "model.student.toy.hidden_size"),
        (["eval.n_prompts=100000"], "eval.n_prompts"), (["data.sizes.eval=0"], "data.sizes.eval"),
        (["stages.distill.lr=1e9"], "stages.distill.lr"), (["scheduler.warmup_ratio=5"], "scheduler.warmup_ratio"),
        (["generation.backend=foo"], "generation.backend"), (["trainer=gpu"], "trainer.accelerator"),
        (["generation.backend=vllm"], "generation.backend"), (["world=full"], "trainer.accelerator"),
        (["+judge.temperatur=0"], "judge.temperatur"), (["judge=openai", "+judge.foo=1"], "judge.foo"),
        (["method=adpa", "method.gamma=-1"], "method.gamma"),
        (["method=pad", "method.n_keep=8", "method.n_samples=8"], "method.n_keep"),
        (["method=dckd", "+model.teacher.tokenizer={kind: bpe, vocab_size: 48}"], "method=dckd"),
        (["method=adpa", "+model.student.chat_style=llama"], "method=adpa"),
        (["method=pad", "method.top_p=0"], "method.top_p"), (["method=pad", "method.top_p=1.5"], "method.top_p"),
        (["method=pad", "method.temperature=0"], "method.temperature"), (["method=pad", "method.beta=0"], "method.beta"),
        (["method=pad", "method.n_keep=1"], "method.n_keep"), (["method=pad", "method.n_keep=6"], "method.n_keep"),
        (["method=pad", "method.n_samples=0"], "method.n_samples"), (["method=dpo", "method.beta=-1"], "method.beta"),
        (["method=dpo", "method.beta=abc"], "method.beta"), (["method=dckd", "method.alpha=-1"], "method.alpha"),
        (["method=dckd", "method.top_k=0"], "method.top_k"), (["method=dckd", "method.top_k=2.5"], "method.top_k"),
        (["method=adpa", "method.advantage_clamp=maybe"], "method.advantage_clamp"),
        (["method=adpa_plus", "method.dckd.alpha=-1"], "method.dckd.alpha"),
        ([f"judge.api_key_env={unset_env}", "judge=openai"], "judge.api_key_env"),
        (["+judge.api_key=sk-not-here"], "judge.api_key"),
        (["+stages.distill.lrr=0.1"], "stages.distill.lrr"), (["+trainer.max_epoch=3"], "trainer.max_epoch"),
        (["+data.sizes.test=5"], "data.sizes.test"), (["+stages.max_lenght=40"], "stages.max_lenght"),
        (["data.task.min_len=9"], "data.task.min_len"), (["data.task.w_correct=0.7"], "data.task.w_correct"),
        (["stages.distill.batch_size=30", "trainer.accumulate_grad_batches=4"], "stages.distill.batch_size"),
        (["model.teacher.toy.num_key_value_heads=3"], "model.teacher.toy.num_key_value_heads"),
    ]
    bad_values = {
        "checkpoint_every": ["0", "-3", "often"], "seed": ["-1", "1.5"], "data.seed": ["x", "-1"],
        "data.task.alphabet_size": ["1", "27"], "data.task.min_len": ["0"], "data.task.max_len": ["0"],
        "data.task.w_format": ["1.5"], "data.task.sft_format_share": ["-0.5", "1.5"],
        "data.task.ops": ["[sort,fly]", "[]"], "optimizer.weight_decay": ["5", "x"],
        "optimizer.betas": ["[0.9]", "[1.5,0.9]"], "scheduler.warmup_ratio": ["-0.1", "x"],
        "stages.max_length": ["0", "4"], "stages.max_new_tokens": ["0"], "stages.sampling_seed": ["-1"],
        "stages.dpo_teacher.beta": ["0", "-1"], "trainer.devices": ["-2", "two"], "trainer.num_nodes": ["0"],
        "trainer.precision": ["17", "fp8"], "trainer.gradient_clip_val": ["-1"],
        "trainer.accumulate_grad_batches": ["0"], "trainer.accelerator": ["quantum"],
        "trainer.log_every_n_steps": ["0"], "trainer.deterministic": ["maybe"],
        "eval.n_prompts": ["0", "-5"], "eval.max_new_tokens": ["0"], "eval.batch_size": ["0"], "eval.n_boot": ["0"],
        "world.dtype": ["float8"], "world.source": ["web"], "world.advantage_top_k": ["0"],
        "model.student.toy.hidden_size": ["0"], "model.student.toy.num_attention_heads": ["0", "3"],
        "model.student.toy.num_hidden_layers": ["0"], "model.teacher.toy.hidden_size": ["95"],
        "model.chat_style": ["klingon"], "model.attn_implementation": ["magic"],
        "judge.strong_margin": ["-1"], "judge.tie_margin": ["-1"],
    }
    for stage in ("sft_teacher", "dpo_teacher", "sft_student", "distill"):
        bad_values.update({f"stages.{stage}.steps": ["-1", "x"], f"stages.{stage}.batch_size": ["0", "2.5"],
                           f"stages.{stage}.lr": ["0", "-1", "1e9"]})
    for key in ("sft", "pairs", "prompts", "eval", "val"):
        bad_values.setdefault(f"data.sizes.{key}", []).extend(["-1", "many"])
    for key, values in bad_values.items():
        cases += [([f"{key}={v}"], key) for v in values]
    openai = {"judge.max_concurrency": ["0"], "judge.timeout_s": ["-5", "0"], "judge.max_retries": ["-1"],
              "judge.invalid_retries": ["-1"], "judge.max_failure_share": ["2", "-0.1"],
              "judge.price_input_per_1m": ["-1"]}
    cases += [(["judge=openai", f"{k}={v}"], k) for k, vs in openai.items() for v in vs]
    return cases


FIX_WORDS = ("; set ", "; remove ", "use ", "export ", "choose", "; fix ")


def bad_configs() -> list[BadInput]:
    """Each bad config composed and validated (no training): it must be refused naming its key and a fix."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from distill.validate import ConfigError, validate

    env = "DISTILL_FAULTS_UNSET_KEY"
    os.environ.pop(env, None)
    saved = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = "sk-placeholder-for-the-judge-checks"
    out = []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            results = [_one_config(compose, validate, ConfigError, overrides, key)
                       for overrides, key in _bad_config_cases(env)]
        out += results
    finally:
        if saved is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = saved
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["world=full", "trainer=cpu"])
    os.environ["OPENAI_API_KEY"] = "sk-placeholder-for-the-judge-checks"
    try:
        warned = validate(cfg, gpu_available=False)
    finally:
        if saved is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = saved
    out.append(BadInput("world=full trainer=cpu without a GPU", "distill.validate", "counted" if warned else "silent",
                        "warning: " + (warned[0] if warned else "none")))
    return out


def _one_config(compose, validate, ConfigError, overrides: list[str], key: str) -> BadInput:  # noqa: N803
    what = " ".join(overrides)
    try:
        cfg = compose("config", overrides=overrides)
        validate(cfg, gpu_available=False)
        return BadInput(what, "distill.validate", "silent", "accepted")
    except ConfigError as e:
        lines = [x for x in str(e).split("\n  - ")[1:] if key in x] or [str(e)]
        named = key in lines[0] and any(w in lines[0] for w in FIX_WORDS)
        return BadInput(what, "distill.validate", "error" if named else "unnamed", lines[0])
    except Exception as e:  # noqa: BLE001 - Hydra refusing an override names the key itself
        msg = f"{type(e).__name__}: {e}"
        return BadInput(what, "hydra compose", "error" if key.split("=")[0] in msg else "unnamed", msg)


# ============================================================================ report
def print_report(report: Report, seconds: float) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    t = Table(title="Faults injected and recovery")
    for col, just in (("scenario", "left"), ("faults injected", "right"), ("runs recovered", "right"),
                      ("judge calls repeated", "right"), ("items lost", "right"), ("s", "right"), ("detail", "left")):
        t.add_column(col, justify=just)
    for o in report.outcomes:
        t.add_row(escape(o.scenario), str(o.injected), f"{o.recovered}/{o.expected}",
                  "—" if o.repeated is None else str(o.repeated), "—" if o.lost is None else str(o.lost),
                  f"{o.seconds:.0f}", escape(o.note),
                  style=None if o.ok else "bold red")
    console.print(t)
    b = Table(title="Bad inputs and configs")
    for col in ("input", "reader", "outcome", "what the user is told"):
        b.add_column(col)
    for x in report.inputs:
        msg = x.message if len(x.message) <= 180 else x.message[:177] + "..."
        b.add_row(escape(x.what), x.reader, x.outcome, escape(msg), style="bold red" if x.outcome == "silent" else None)
    console.print(b)
    o = report.outcomes
    console.print(
        f"faults injected: {sum(x.injected for x in o)}; runs recovered: {sum(x.recovered for x in o)}/"
        f"{sum(x.expected for x in o)}; judge calls repeated: {sum(x.repeated or 0 for x in o)}; items lost: "
        f"{sum(x.lost or 0 for x in o)}; bad inputs tried: {len(report.inputs)} "
        f"({sum(x.outcome == 'silent' for x in report.inputs)} silent, "
        f"{sum(x.outcome == 'unnamed' for x in report.inputs)} unnamed); {seconds:.0f} s")
    corrupt = [x for x in report.inputs if x.reader == "reused artifact"]
    judged = [x for x in report.inputs if x.reader.startswith(("eval.report.pool", "eval.suite.pool", "eval.judges"))]
    configs = [x for x in report.inputs if x.reader in ("distill.validate", "hydra compose")]
    files = [x for x in report.inputs if x not in corrupt and x not in configs and x not in judged]
    console.print(
        f"corruptions tried: {len(corrupt)} (rebuilt with a warning {sum(x.outcome == 'rebuilt' for x in corrupt)}, "
        f"rebuilt as missing {sum(x.outcome == 'recovered' for x in corrupt)}, named errors "
        f"{sum(x.outcome == 'error' for x in corrupt)}, silently wrong {sum(x.outcome == 'silent' for x in corrupt)}); "
        f"judgment files and judge cache damaged: {len(judged)} (named errors {sum(x.outcome == 'error' for x in judged)}"
        f", asked again {sum(x.outcome == 'rebuilt' for x in judged)}, named warnings "
        f"{sum(x.outcome == 'counted' for x in judged)}, silent or unnamed "
        f"{sum(x.outcome in ('silent', 'unnamed') for x in judged)}); "
        f"bad configs tried: {len(configs)} ({sum(x.outcome == 'silent' for x in configs)} silent, "
        f"{sum(x.outcome == 'unnamed' for x in configs)} unnamed); bad input files: {len(files)} "
        f"({sum(x.outcome in ('silent', 'unnamed') for x in files)} silent or unnamed)")


def run_all(work: Path, training: bool = True) -> Report:
    report = Report()
    scenarios = [scenario_training] if training else []
    scenarios += [scenario_artifact_kill, scenario_artifact_concurrency, lambda w: scenario_judge_kill(w, "mt_bench"),
                  lambda w: scenario_judge_kill(w, "arena_hard"), scenario_judge_transient, scenario_judge_persistent]
    for i, scenario in enumerate(scenarios, 1):
        t0 = time.time()
        got = scenario(work)
        got = got if isinstance(got, tuple) else (got,)
        for o in got:
            o.seconds = (time.time() - t0) / len(got)
            print(f"[{i}/{len(scenarios)}] {o.scenario}: {'ok' if o.ok else 'FAILED'} ({o.seconds:.0f} s)",
                  file=sys.stderr, flush=True)
        report.outcomes += got
    t0 = time.time()
    report.outcomes.append(scenario_cli_key(work))
    report.outcomes[-1].seconds = time.time() - t0
    if training:
        t0 = time.time()
        logs = "".join(p.read_text(errors="replace") for p in (work / "training").glob("*.log"))
        n_files, hits, lines = _canary_hits(work / "training", logs, (ENV_CANARY,))
        report.outcomes.append(Outcome("canary key in the environment of the three training runs", injected=1,
                                       expected=1, recovered=int(hits == 0 and lines == 0), lost=hits + lines,
                                       note=f"{n_files} files written, {hits} with the key; {lines} console lines "
                                            "with it"))
        print("corruption: building one TINY world, then damaging a copy of it per case", file=sys.stderr, flush=True)
        corrupted, rows = scenario_corruption(work)
        corrupted.seconds = time.time() - t0
        report.outcomes.append(corrupted)
        report.inputs += rows
    report.inputs += judgment_corruptions(work) + bad_inputs(work) + bad_configs()
    for x in report.inputs:  # file names relative to the working folder
        x.message = x.message.replace(f"{work}{os.sep}", "")
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_judge-child"]:
        _judge_child(*argv[1:5])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--skip-training", action="store_true", help="skip the three `python run.py` runs")
    p.add_argument("--keep", type=Path, default=None, help="keep the working files in this folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("WANDB_MODE", "offline")
    t0 = time.time()
    work = args.keep or Path(tempfile.mkdtemp(prefix="faults-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = run_all(work, training=not args.skip_training)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print_report(report, time.time() - t0)
    for line in report.failures:
        print("FAILED:", line, file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
