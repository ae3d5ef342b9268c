"""Artifact keys are complete: changing any single config leaf gives a new key to exactly the
artifacts that depend on it (directly, or through an artifact they read), and to no other.

Computed on keys alone (``distill.stages.stage_keys``: no data, no training). The expectations are
this file's own statement of what each stage reads (``DIRECT``) and which artifact reads which
(``graph``); leaves that change no artifact are listed in ``NO_ARTIFACT`` with the reason.
"""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf, open_dict

from conftest import compose_cfg
from distill.stages import NEUTRAL, Pipeline, stage_keys

TRAINING = {"sft_teacher", "sft_student", "dpo_teacher", "distill", "distill:dckd"}
GENERATE = {"generate:sft_teacher", "generate:dpo_teacher", "generate:sft_student", "generate:distill"}
SAMPLING_FIELDS = ("n_samples", "n_keep", "temperature", "top_p")

# Config leaves that change no artifact, and why.
NO_ARTIFACT = {
    "optimized_metric": "the metric run.py returns to a sweep",
    "checkpoint_every": "checkpoints only; a resumed run reaches the same weights (tests/test_resume.py)",
    "dry_run": "prints the plan instead of running",
    "group": "the name runs are grouped by (W&B, results, report)",
    "logger.": "where metrics are logged",
    "judge.": "benchmark judging happens after the artifacts, on the saved answers",
    "paths.": "where artifacts live, not what they hold",
    "eval.n_boot": "bootstrap resamples of the score, computed from the generations",
    "world.name": "a label; world.source and world.dtype are what the stages read",
    "eval.step.": "the evaluation step's entry point (which code evaluates), not what any artifact holds",
    **NEUTRAL,
}


def direct(leaf: str, method: str) -> set[str]:
    """The artifacts whose own spec reads ``leaf`` (before propagation through the graph); ADPA+'s
    DCKD stage reads its own pair cache, which is not a separate entry here."""
    got = _direct(leaf, method)
    shared = leaf in ("eval.batch_size", "world.dtype", "stages.max_length")  # read by every cache
    # ADPA+'s DCKD stage follows ADPA+'s teacher-signal ablation (method.dckd.teacher_signal interpolates it)
    follows = leaf == "method.teacher_signal"
    return got | {"distill:dckd"} if (shared or follows) and method == "adpa_plus" else got


def _direct(leaf: str, method: str) -> set[str]:
    pad = method.startswith("pad")
    if any(leaf == k or (k.endswith(".") and leaf.startswith(k)) for k in NO_ARTIFACT):
        return set()
    if leaf.startswith("data."):
        return {"data"}
    if leaf.startswith("model.teacher."):
        return {"sft_teacher"}
    if leaf.startswith("model.student."):
        return {"sft_student"}
    if leaf.startswith("model.") or leaf == "world.source":
        return {"sft_teacher", "sft_student"}
    if leaf.split(".")[0] in ("optimizer", "scheduler", "trainer"):
        return set(TRAINING)
    if leaf == "stages.max_length":
        return TRAINING | {"teacher_cache", "pad_scores"}
    if leaf == "world.dtype":
        return TRAINING | GENERATE | {"samples", "teacher_cache", "pad_scores"}
    if leaf.startswith("stages.sft_teacher."):
        return {"sft_teacher"}
    if leaf.startswith("stages.sft_student."):
        return {"sft_student"}
    if leaf.startswith("stages.dpo_teacher."):
        return {"dpo_teacher"}
    if leaf.startswith("stages.distill.") or leaf == "seed":
        return {"distill", "distill:dckd"}
    if leaf == "stages.max_new_tokens":
        return {"samples"}
    if leaf == "stages.sampling_seed":
        return {"samples"} if pad else set()  # ADPA's ŷ is greedy
    if leaf == "eval.batch_size":
        return GENERATE | {"samples", "teacher_cache", "pad_scores"}
    if leaf in ("eval.max_new_tokens", "eval.n_prompts"):
        return set(GENERATE)
    if leaf.startswith("generation."):
        return GENERATE | {"samples"}
    if leaf in ("world.pad_calibration_lambda", "method.calibration_lambda"):
        # PAD's MCQ calibration (method.calibration_lambda interpolates the world's): on, in the toy
        # world, the teachers also learn the comparison format, and the recipe reads π_dpo's answers
        # (pad_mcq, a new input: see the test's symmetric difference)
        return {"sft_teacher", "distill"} if pad else set()
    if leaf == "world.advantage_top_k":  # interpolated into ADPA's method.top_k
        return {"distill", "teacher_cache"} if method in ("adpa", "adpa_plus") else set()
    if leaf.startswith("method.dckd."):
        return {"distill:dckd", "distill"}
    if leaf == "method.top_k" and method in ("adpa", "adpa_plus", "dckd"):
        return {"distill", "teacher_cache"}
    if leaf.startswith("method.recipe.") or leaf == "method.teachers":
        return {"distill"}
    if pad and leaf.split(".")[-1] in SAMPLING_FIELDS:
        return {"distill", "samples"}
    if leaf.startswith("method."):
        return {"distill"}
    raise AssertionError(f"config leaf {leaf} is not classified: say which artifacts it changes (or why none)")


def graph(method: str) -> dict[str, set[str]]:
    """Which artifacts each artifact reads, for ``method``."""
    g = {"data": set(), "sft_teacher": {"data"}, "sft_student": {"data"}, "dpo_teacher": {"sft_teacher", "data"},
         **{f"generate:{r}": {r, "data"} for r in ("sft_teacher", "dpo_teacher", "sft_student", "distill")}}
    inputs = {"dpo": set(), "dckd": {"dpo_teacher", "teacher_cache"},
              "adpa": {"dpo_teacher", "sft_teacher", "samples", "teacher_cache"},
              "adpa_plus": {"dpo_teacher", "sft_teacher", "samples", "teacher_cache", "distill:dckd"},
              "pad_lppd": {"dpo_teacher", "samples", "pad_scores"}}[method]
    g["distill"] = {"sft_student", "data"} | inputs
    if method == "dckd":
        g["teacher_cache"] = {"dpo_teacher", "data"}
    if method in ("adpa", "adpa_plus"):
        start = "distill:dckd" if method == "adpa_plus" else "sft_student"
        g["samples"] = {start, "data"}
        g["teacher_cache"] = {"samples", "dpo_teacher", "sft_teacher"}
    if method == "adpa_plus":
        g["distill:dckd"] = {"sft_student", "data", "dpo_teacher"}
    if method == "pad_lppd":
        g["samples"] = {"sft_student", "data"}
        g["pad_scores"] = {"samples", "dpo_teacher"}
    return g


def closure(roots: set[str], g: dict[str, set[str]]) -> set[str]:
    out = {r for r in roots if r in g}
    while True:
        more = {a for a, reads in g.items() if reads & out} - out
        if not more:
            return out
        out |= more


def leaves(tree, prefix=""):
    if isinstance(tree, dict) and tree:
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, tree


ALTERNATIVES = {"model.chat_style": "llama", "model.tokenizer.kind": "bpe", "world.source": "hub",
                "generation.backend": "vllm", "world.dtype": "bfloat16", "trainer.precision": "bf16-mixed"}


def changed_value(leaf: str, value):
    if leaf in ALTERNATIVES:
        return ALTERNATIVES[leaf]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 0.01
    if isinstance(value, str):
        return value + "_changed"
    if isinstance(value, list):
        if not value:
            return ["dpo_teacher"] if leaf.endswith("teachers") else [1]
        return value[:-1] if len(value) > 1 else [*value, value[0]]
    return "changed" if value is None else None


class KeyPipeline(Pipeline):
    """Keys as the run computes them; the (toy) tokenizer, which only enters the teacher caches'
    template fingerprint, is built once per setting, on the default task's words (a change of the
    task changes the data key, hence every cache's key, anyway) and as in the toy world for
    world.source=hub."""

    _tokenizers: dict = {}

    def tokenizer(self, role: str = "student"):
        from distill.models import build_tokenizer
        from toyworld.task import ToyTask

        f = self.family(role)
        sig = (f.chat_style, repr(OmegaConf.to_container(f.tokenizer)))
        if sig not in self._tokenizers:
            self._tokenizers[sig] = build_tokenizer(f, "toy", ToyTask().corpus(), role)
        return self._tokenizers[sig]


@pytest.mark.slow  # about 150 leaves x 14 keys per method: seconds each on an idle core
@pytest.mark.parametrize("method", ["adpa_plus", "pad_lppd", "dckd", "adpa", "dpo"])
def test_every_config_leaf_rebuilds_exactly_the_artifacts_that_depend_on_it(method, tmp_path):
    base_cfg = compose_cfg([f"method={method}"], tmp_path)
    with open_dict(base_cfg):
        base_cfg.pop("hydra")
    base = stage_keys(base_cfg, KeyPipeline)
    g = graph(method)
    assert set(base) == set(g), "the run reads other artifacts than this test expects"
    tree = OmegaConf.to_container(base_cfg, resolve=False)
    wrong, checked = [], 0
    for leaf, value in leaves(tree):
        if isinstance(value, str) and value.startswith("${"):  # an interpolation: follows its source
            value = OmegaConf.select(base_cfg, leaf)
        cfg = base_cfg.copy()
        with open_dict(cfg):
            OmegaConf.update(cfg, leaf, changed_value(leaf, value), merge=False)
        after = stage_keys(cfg, KeyPipeline)
        got = {r for r in base.keys() | after.keys() if base.get(r) != after.get(r)}
        expected = closure(direct(leaf, method), g)
        if leaf.startswith("method.recipe.") or leaf in ("method.teachers", "method.calibration_lambda",
                                                         "world.pad_calibration_lambda"):  # other inputs
            expected |= set(base.keys() ^ after.keys())
        checked += 1
        if got != expected:
            wrong.append(f"{leaf}: rebuilt {sorted(got)}, expected {sorted(expected)}")
    assert not wrong, "\n".join(wrong)
    assert checked > 90


def test_training_settings_outside_the_old_key_lists_now_change_the_keys(tmp_path):
    """The settings that were once left out (scheduler, clipping, precision, dtype, eval batch size)."""
    cfg = compose_cfg(["method=dpo"], tmp_path)
    base = stage_keys(cfg, KeyPipeline)
    for override, stage in [("scheduler.warmup_ratio=0.5", "sft_teacher"), ("trainer.gradient_clip_val=0.5", "distill"),
                            ("trainer.precision=bf16-mixed", "dpo_teacher"), ("world.dtype=bfloat16", "sft_student"),
                            ("eval.batch_size=7", "generate:distill"), ("optimizer.weight_decay=0.1", "distill")]:
        assert stage_keys(compose_cfg(["method=dpo", override], tmp_path), KeyPipeline)[stage] != base[stage], override
    # and a console setting does not
    assert stage_keys(compose_cfg(["method=dpo", "trainer.enable_progress_bar=false"], tmp_path), KeyPipeline) == base


def test_adpa_plus_shares_the_dckd_run_artifact(tmp_path):
    """ADPA+'s first stage is the very artifact a method=dckd run builds."""
    plus = stage_keys(compose_cfg(["method=adpa_plus"], tmp_path), KeyPipeline)
    dckd = stage_keys(compose_cfg(["method=dckd"], tmp_path), KeyPipeline)
    assert plus["distill:dckd"] == dckd["distill"]
