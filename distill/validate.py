"""Checks of a composed configuration, run before anything is built or downloaded.

``validate(cfg)`` is the first thing :func:`distill.pipeline.run` does, and tests call it on a
config from ``hydra.compose`` without running anything. Every problem found is reported at once in
one :class:`ConfigError`, one line per problem, each naming the key, the value, the allowed range
and a fix. Conditions that do not stop a run (``world=full`` on a machine without a GPU) are
logged as warnings and returned.

What is checked:
  * the method's hyperparameters against the typed config its plugin declares (``distill.methods``,
    :mod:`distill.methods.plugin`: each field's range and meaning, so γ is checked as ADPA's
    advantage weight in ADPA and as another method's γ elsewhere), and the method's own relations
    (PAD: 2 ≤ n_keep ≤ n_samples, n_keep ≤ 7 for LPPD), for ``method`` and every method config nested
    in it (ADPA+'s ``method.dckd``); an unknown ``method.name`` is named with the known ones;
  * every group against its typed schema (:mod:`distill.schema`: types, ranges, choices, unknown
    keys), then the relations between keys (task lengths and weights, ``eval.n_prompts`` within
    ``data.sizes.eval``, batch sizes divisible across devices, heads dividing the hidden size and
    the family's config class accepting the toy architecture), and ``trainer.*`` / ``judge.*``
    keys against the arguments of the classes they configure;
  * teacher and student tokenizers for methods whose plugin is ``token_level`` (DCKD, ADPA,
    ADPA+): the two must share vocabulary and chat template, which the config decides through
    ``model.tokenizer`` / ``model.chat_style`` and their per-role overrides
    ``model.teacher.*`` / ``model.student.*``. PAD compares sequence scores and needs neither;
  * secrets: an API key is read from the environment variable named by ``*.api_key_env``, which
    must be set; a key written into the config itself is refused;
  * a GPU trainer or ``generation.backend=vllm`` without a CUDA device: an error (a warning in a
    dry run); ``world=full`` with a CPU trainer: a warning.

:func:`refuse_secret_overrides` runs before Hydra (``run.py``, ``python -m eval``): a credential on
the command line stops the program before anything is written.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
import re
import sys
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from distill import files

log = logging.getLogger(__name__)

# Keys whose value is a credential; ``*_env`` keys (the *name* of a variable) are allowed.
SECRET_KEYS = {"api_key", "apikey", "openai_api_key", "access_token", "auth_token", "hf_token", "token",
               "secret", "secret_key", "password"}


# A command-line override sets a credential when its key's last part is (or ends with) one of these
# words, e.g. ``+judge.api_key=...``, ``hydra.job.env_set.OPENAI_API_KEY=...``, ``x.hf_token=...``;
# ``*_env`` keys name a variable and are allowed, and so is ``model.teacher.tokenizer``.
_SECRET_WORD = re.compile(r"(^|[_\-])(api_?key|token|secret|secret_?key|password|passwd|credentials?)$")
# values that look like a key whatever the override's key is
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{12,}|hf_[A-Za-z0-9]{20,})")


def secret_overrides(argv: list[str]) -> list[str]:
    """The keys of the command-line overrides in ``argv`` that carry a credential."""
    found = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        last = key.rsplit(".", 1)[-1].lower()
        if (not last.endswith("_env") and _SECRET_WORD.search(last)) or _SECRET_VALUE.search(value):
            found.append(key)
    return found


def refuse_secret_overrides(argv: list[str], program: str = "run.py") -> None:
    """Stop (exit status 2) before Hydra runs when the command line carries a credential: Hydra
    would save the command line in the run's folder (``.hydra/overrides.yaml``, ``config.yaml``,
    ``hydra.yaml``, ``multirun.yaml``) and the logger would print it. Names the keys, never the values."""
    keys = secret_overrides(argv)
    if not keys:
        return
    sys.stderr.write(
        f"{program}: refused, nothing was run or written: the command line sets {', '.join(keys)}, which holds a "
        "credential; a command line is saved with the run and shown in logs and process lists. Put the key in an "
        "environment variable and name the variable instead, e.g. `export OPENAI_API_KEY=...` and "
        "judge.api_key_env=OPENAI_API_KEY (the judge reads the key from the variable named by judge.api_key_env)\n")
    raise SystemExit(2)


class ConfigError(ValueError):
    """A composed configuration that cannot run; the message lists every problem and its fix."""


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# (path, test, allowed range, suggested value) for the stage, evaluation and training-loop sizes.
_GE0_INT = (lambda v: _integer(v) and v >= 0, "must be an integer >= 0")
_GE1_INT = (lambda v: _integer(v) and v >= 1, "must be an integer >= 1")
_POS = (lambda v: _number(v) and v > 0, "must be > 0")


def _show(v: Any) -> str:
    return OmegaConf.to_yaml(v).strip().replace("\n", ", ") if isinstance(v, (DictConfig, ListConfig)) else repr(v) \
        if isinstance(v, str) else str(v)


def _problem(key: str, value: Any, allowed: str, fix: str) -> str:
    return f"{key}={_show(value)}: {allowed}; {fix}"


# --------------------------------------------------------------------------------- method
def _check_method(cfg: DictConfig, problems: list[str]) -> None:
    """The method node and every nested one (ADPA+'s ``method.dckd``), each against the typed config
    its registered plugin declares (``distill.methods``: ranges, then the method's own relations)."""
    if "method" not in cfg:
        return
    from distill.methods.plugin import check

    problems += check(cfg.method, cfg)


def _reads_teacher_cache(m: DictConfig) -> bool:
    """Whether the method, or a method nested in it, compares the teacher's and the student's token
    distributions id by id (its plugin's ``token_level``: DCKD, ADPA, ADPA+ through its DCKD stage)."""
    from distill.methods.plugin import method_nodes

    try:
        return any(plugin.token_level for _, _, plugin in method_nodes(m))
    except ValueError:  # an unknown method: reported by _check_method
        return False


def _role_tokenizer(model: DictConfig, role: str) -> tuple[dict, str]:
    """The tokenizer settings and chat style ``role`` ends up with (as :meth:`Pipeline.family`)."""
    r = model.get(role) or {}
    tok = {**_plain(model.get("tokenizer")), **_plain(r.get("tokenizer"))}
    return tok, r.get("chat_style") or model.get("chat_style")


def _plain(node) -> dict:
    return {} if node is None else files.plain(node)


def _check_tokenizers(cfg: DictConfig, problems: list[str]) -> None:
    if "method" not in cfg or "model" not in cfg or not _reads_teacher_cache(cfg.method):
        return
    model = cfg.model
    (t_tok, t_style), (s_tok, s_style) = _role_tokenizer(model, "teacher"), _role_tokenizer(model, "student")
    source = OmegaConf.select(cfg, "world.source", default="toy")

    def who(role: str) -> str:
        hub = OmegaConf.select(model, f"{role}.hub_id", default=None)
        return f"the {model.get('family')} {role} ({'toy stand-in for ' if source == 'toy' else ''}{hub})"

    method = cfg.method.get("name")
    differs = []
    if t_tok != s_tok:
        differs.append(f"tokenizer: teacher {t_tok} vs student {s_tok} (model.teacher.tokenizer / "
                       f"model.student.tokenizer)")
    if t_style != s_style:
        differs.append(f"chat template: teacher {t_style!r} vs student {s_style!r} (model.teacher.chat_style / "
                       f"model.student.chat_style)")
    if differs:
        problems.append(
            f"method={method}: compares the teacher's and the student's token distributions id by id, so "
            f"{who('teacher')} and {who('student')} must share vocabulary and chat template; they differ in "
            f"{'; and in '.join(differs)}. Remove the per-role override (or give both roles the same one), "
            "or use method=pad, which distils across tokenizers")


# --------------------------------------------------------------------------------- typed groups
def _check_schema(cfg: DictConfig, problems: list[str]) -> None:
    """Every group against its schema (types, ranges, choices, unknown keys), then the relations."""
    from distill import schema as S

    S.check_node(cfg, S.Top, "", problems)
    data = cfg.get("data") if "data" in cfg else None
    if isinstance(data, DictConfig):
        S.check_node(data, S.ToyData if data.get("name") == "toy" else S.HubData, "data", problems)
    _check_relations(cfg, problems)
    _check_signatures(cfg, problems)


def _sel(cfg: DictConfig, path: str):
    try:
        return OmegaConf.select(cfg, path, default=None, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - reported by the schema check
        return None


def _check_relations(cfg: DictConfig, problems: list[str]) -> None:
    lo, hi = _sel(cfg, "data.task.min_len"), _sel(cfg, "data.task.max_len")
    if _integer(lo) and _integer(hi) and lo > hi:
        problems.append(_problem("data.task.min_len", lo, f"must be <= data.task.max_len={hi}",
                                 f"set data.task.min_len={hi} or data.task.max_len={lo}"))
    wc, wf = _sel(cfg, "data.task.w_correct"), _sel(cfg, "data.task.w_format")
    if _number(wc) and _number(wf) and abs(wc + wf - 1) > 1e-9:
        problems.append(_problem("data.task.w_correct", wc, f"must sum to 1 with data.task.w_format={wf} (the "
                                 "oracle's weights)", f"set data.task.w_correct={1 - wf:g}"))
    pc, pf = _sel(cfg, "data.task.pair_correct_share"), _sel(cfg, "data.task.pair_format_share")
    if pc == 1 and pf in (0, 1):
        problems.append(_problem("data.task.pair_correct_share", pc, f"with data.task.pair_format_share={pf} every "
                                 "preference pair's two candidates score the same (no pair can be made)",
                                 "set data.task.pair_correct_share=0.5, or data.task.pair_format_share=0.35"))
    n, available = _sel(cfg, "eval.n_prompts"), _sel(cfg, "data.sizes.eval")
    if _integer(n) and _integer(available) and n > available:
        problems.append(_problem("eval.n_prompts", n, f"must be <= data.sizes.eval={available}, the evaluation "
                                 "prompts there are (never capped silently)",
                                 f"set eval.n_prompts={available}, or data.sizes.eval={n}"))
    if _sel(cfg, "world.source") == "toy":
        for role in ("teacher", "student"):
            _check_arch(cfg, role, problems)
    tc = cfg.get("trainer") if "trainer" in cfg else None
    devices, nodes, acc = (_sel(cfg, f"trainer.{k}") for k in ("devices", "num_nodes", "accumulate_grad_batches"))
    if isinstance(tc, DictConfig) and all(_integer(v) and v >= 1 for v in (devices, nodes, acc)):
        parts = devices * nodes * acc
        for name in ("sft_teacher", "dpo_teacher", "sft_student", "distill"):
            bs = _sel(cfg, f"stages.{name}.batch_size")
            if _integer(bs) and bs >= 1 and bs % parts:
                problems.append(_problem(
                    f"stages.{name}.batch_size", bs, f"must be a multiple of trainer.devices × trainer.num_nodes × "
                    f"trainer.accumulate_grad_batches = {parts} (each process reads an equal share per micro-step)",
                    f"set stages.{name}.batch_size={max(parts, bs - bs % parts)}"))


def _check_arch(cfg: DictConfig, role: str, problems: list[str]) -> None:
    """The toy architecture of ``role``: heads divide the hidden size, and its config class accepts it."""
    toy = _sel(cfg, f"model.{role}.toy")
    if not isinstance(toy, DictConfig):
        return
    arch, key = OmegaConf.to_container(toy, resolve=True), f"model.{role}.toy"
    h, heads, kv = arch.get("hidden_size"), arch.get("num_attention_heads"), arch.get("num_key_value_heads")
    if not all(_integer(v) and v >= 1 for v in (h, heads)):
        return  # the schema reported it
    if h % heads:
        problems.append(_problem(f"{key}.hidden_size", h, f"must be a multiple of {key}.num_attention_heads={heads}",
                                 f"set {key}.hidden_size={max(heads, h - h % heads)}"))
        return
    if _integer(kv) and kv >= 1 and heads % kv:
        problems.append(_problem(f"{key}.num_key_value_heads", kv, f"must divide {key}.num_attention_heads={heads}",
                                 f"set {key}.num_key_value_heads={heads}"))
        return
    try:
        from hydra.utils import get_class

        get_class(str(_sel(cfg, "model.config_class")))(vocab_size=64, **arch)
    except Exception as e:  # noqa: BLE001 - the architecture's own check, named
        msg = " ".join(str(e).split())[-300:]
        problems.append(f"{key}={_show(toy)}: {_sel(cfg, 'model.config_class')} refuses it ({msg}); fix the "
                        f"value it names under {key}")


def _check_signatures(cfg: DictConfig, problems: list[str]) -> None:
    """``trainer.*`` must be arguments of its ``_target_`` (lightning.Trainer) and ``judge.*`` of the
    judge class, so that a misspelt option fails now and not after training."""
    from distill.schema import signature_keys

    checks = [("trainer", {"_target_"}), ("judge", {"_target_", "name", "runtime"})]
    for group, extra in checks:
        node = cfg.get(group) if group in cfg else None
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        try:
            names, var_kw = signature_keys(str(node._target_))
        except Exception as e:  # noqa: BLE001 - an unknown class
            problems.append(_problem(f"{group}._target_", node._target_, f"cannot be imported ({type(e).__name__})",
                                     f"pick a {group}= option"))
            continue
        if var_kw and group == "judge":  # a served judge passes the rest to the HTTP judge
            from distill.schema import signature_keys as sk

            names |= sk("eval.judges.http.HTTPJudge")[0]
        elif var_kw:
            continue
        for key in node:
            if key not in names | extra:
                problems.append(f"{group}.{key}: unknown option of {node._target_}; it takes "
                                f"{', '.join(sorted(names - {'task', 'forms'}))}; remove {group}.{key} or fix its "
                                "spelling")
    judge = cfg.get("judge") if "judge" in cfg else None
    if isinstance(judge, DictConfig):
        _check_judge_values(judge, problems)


_JUDGE_RULES = {"max_concurrency": _GE1_INT, "max_retries": _GE0_INT, "invalid_retries": _GE0_INT,
                "timeout_s": _POS, "batch_size": _GE1_INT, "max_length": _GE1_INT, "grade_scale": _POS,
                "max_requests_per_minute": _POS}


def _check_judge_values(judge: DictConfig, problems: list[str]) -> None:
    for key, (ok, allowed) in _JUDGE_RULES.items():
        v = judge.get(key) if key in judge else None
        if v is not None and not ok(v):
            problems.append(_problem(f"judge.{key}", v, allowed, f"set judge.{key} to such a value (see conf/judge/"
                                     f"{judge.get('name')}.yaml)"))
    for key in ("strong_margin", "tie_margin", "price_input_per_1m", "price_output_per_1m"):
        v = judge.get(key) if key in judge else None
        if v is not None and not (_number(v) and v >= 0):
            problems.append(_problem(f"judge.{key}", v, "must be >= 0", f"set judge.{key}=0"))
    share = judge.get("max_failure_share") if "max_failure_share" in judge else None
    if share is not None and not (_number(share) and 0 <= share <= 1):
        problems.append(_problem("judge.max_failure_share", share, "must be in [0, 1] (the share of judge requests "
                                 "that may fail)", "set judge.max_failure_share=0.05"))


# --------------------------------------------------------------------------------- secrets
def _walk(obj, prefix: str = ""):
    """(path, key, value) of every entry of a plain (unresolved) config tree."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        path = f"{prefix}.{k}" if prefix else str(k)
        yield path, str(k), v
        yield from _walk(v, path)


def _check_secrets(cfg: DictConfig, problems: list[str]) -> None:
    tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)
    for path, key, value in _walk(tree):
        if key.lower() in SECRET_KEYS and value not in (None, ""):
            env = path.rsplit(".", 1)[0] + ".api_key_env" if "." in path else "api_key_env"
            problems.append(f"{path}=<redacted>: credentials are never read from a config (it is saved with the "
                            f"run and logged); remove {path} and name an environment variable in {env} instead, "
                            f"e.g. {env}=OPENAI_API_KEY with `export OPENAI_API_KEY=...`")
    judge = cfg.get("judge") if "judge" in cfg else None
    if isinstance(judge, DictConfig) and "api_key_env" in judge:
        env = judge.get("api_key_env")
        if env and not os.environ.get(str(env)):
            problems.append(f"judge.api_key_env={env!s}: the judge's API key is read from the environment variable "
                            f"{env}, which is not set; run `export {env}=...` first, or choose a judge that needs no "
                            "key (judge.api_key_env=null, e.g. a local server)")


# --------------------------------------------------------------------------------- hardware
def _check_hardware(cfg: DictConfig, warnings: list[str], problems: list[str], gpu_available: bool | None) -> None:
    """A GPU trainer or the vLLM backend without a CUDA device stops the run before any work (a dry
    run, which only prints the plan, gets warnings); the hub world on CPUs is a warning."""
    source = _sel(cfg, "world.source") or "toy"
    accelerator = _sel(cfg, "trainer.accelerator") or "cpu"
    backend = _sel(cfg, "generation.backend") or "hf"
    if source != "hub" and accelerator not in ("gpu", "cuda") and backend != "vllm":
        return
    ids = [OmegaConf.select(cfg, f"model.{r}.hub_id", default="") for r in ("teacher", "student")]
    if accelerator == "cpu" and all(Path(str(i)).is_dir() for i in ids):
        return  # local checkpoints trained on the CPU (world=rehearsal's stand-ins): nothing to download
    if gpu_available is None:
        import torch

        gpu_available = torch.cuda.is_available()
    if gpu_available:
        return
    needs = problems if not _sel(cfg, "dry_run") else warnings
    if accelerator in ("gpu", "cuda"):
        if source == "hub":
            ids = [_sel(cfg, f"model.{r}.hub_id") or "?" for r in ("teacher", "student")]
            needs.append(f"trainer.accelerator={accelerator}: no CUDA GPU on this machine; world={_sel(cfg, 'world.name')} "
                         f"would download {ids[0]} and {ids[1]} and the papers' data sets, then fail to train; "
                         "use world=toy here, or run on a GPU machine")
        else:
            needs.append(f"trainer.accelerator={accelerator}: no CUDA GPU on this machine, so training would fail; "
                         "use trainer=cpu")
    elif source == "hub":
        ids = [_sel(cfg, f"model.{r}.hub_id") or "?" for r in ("teacher", "student")]
        warnings.append(f"world={_sel(cfg, 'world.name')} on a machine without a CUDA GPU: the run would download "
                        f"{ids[0]} and {ids[1]} and train them on the CPU (trainer.accelerator={accelerator}); "
                        "Ctrl-C now and use world=toy here, or run on a GPU machine")
    if backend == "vllm":
        needs.append("generation.backend='vllm': vLLM needs a CUDA GPU, and there is none on this machine; set "
                     "generation.backend=hf")


# --------------------------------------------------------------------------------- entry point
def validate(cfg: DictConfig, *, gpu_available: bool | None = None) -> list[str]:
    """Check ``cfg``; raise :class:`ConfigError` listing every problem, return (and log) warnings.

    ``gpu_available`` overrides the CUDA probe (tests)."""
    problems: list[str] = []
    warnings: list[str] = []
    _check_method(cfg, problems)
    _check_tokenizers(cfg, problems)
    _check_schema(cfg, problems)
    _check_secrets(cfg, problems)
    _check_hardware(cfg, warnings, problems, gpu_available)
    if problems:
        head = "invalid configuration" if len(problems) == 1 else f"invalid configuration ({len(problems)} problems)"
        raise ConfigError(head + ":\n  - " + "\n  - ".join(problems))
    for w in warnings:
        log.warning(w)
    return warnings
