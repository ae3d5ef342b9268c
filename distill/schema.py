"""Typed, validated schemas of every config group, checked on the composed config before anything
is built (``distill.validate.validate`` runs :func:`check`).

Each group is a dataclass whose fields carry a :class:`Rule` (type, range or choices, and the value
to suggest); :func:`check` walks the composed config against them and reports every problem as
``key=value: <allowed range>; set key=<fix>``. Unknown keys in a closed group (a misspelt
``stages.distill.lrr``) are problems too, listing the valid keys. Relations between keys
(``min_len <= max_len``, ``eval.n_prompts <= data.sizes.eval``, heads dividing the hidden size)
and options checked against the code they configure (``trainer.*`` against ``lightning.Trainer``,
``judge.*`` against the judge class's arguments) follow the field rules.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from omegaconf import DictConfig, ListConfig, OmegaConf


# ----------------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """What a value must be: ``test`` returns True when it is valid; ``allowed`` says it in words."""

    test: Callable[[Any], bool]
    allowed: str
    fix: str
    optional: bool = False  # null allowed


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(lo: int | None = None, hi: int | None = None, *, fix: Any, optional: bool = False, why: str = "") -> Any:
    words = ("an integer" + (f" >= {lo}" if lo is not None and hi is None else "") +
             (f" in [{lo}, {hi}]" if lo is not None and hi is not None else "") + (f" ({why})" if why else ""))
    rule = Rule(lambda v: _int(v) and (lo is None or v >= lo) and (hi is None or v <= hi), f"must be {words}",
                str(fix), optional)
    return field(default=None, metadata={"rule": rule})


def real(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False,
         fix: Any, optional: bool = False, why: str = "") -> Any:
    if lo is not None and hi is not None:
        words = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        words = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        words = "a number"

    def test(v):
        return _real(v) and (lo is None or (v > lo if lo_open else v >= lo)) and \
            (hi is None or (v < hi if hi_open else v <= hi))

    return field(default=None, metadata={"rule": Rule(test, f"must be {words}" + (f" ({why})" if why else ""),
                                                      str(fix), optional)})


def choice(*values: Any, fix: Any = None, optional: bool = False, why: str = "") -> Any:
    allowed = f"must be one of {', '.join(map(str, values))}" + (f" ({why})" if why else "")
    return field(default=None, metadata={"rule": Rule(lambda v: v in values, allowed, str(fix or values[0]), optional)})


def boolean(fix: bool = False) -> Any:
    return field(default=None, metadata={"rule": Rule(lambda v: isinstance(v, bool), "must be true or false",
                                                      str(fix).lower())})


def text(fix: str = "...", optional: bool = False) -> Any:
    return field(default=None, metadata={"rule": Rule(lambda v: isinstance(v, str) and v != "", "must be a text",
                                                      fix, optional)})


def anything() -> Any:
    return field(default=None, metadata={"rule": None})


def group(schema: type, optional: bool = False) -> Any:
    return field(default=None, metadata={"schema": schema, "optional": optional})


OPEN = "__open__"  # a schema class attribute: unknown keys allowed (checked elsewhere, or free-form)


def _chat_styles() -> set[str]:
    from toyworld.tokenizer import STYLES

    return set(STYLES)


# ----------------------------------------------------------------------------------- the groups
@dataclass
class Generation:
    backend: str = choice("hf", "vllm", why="hf: transformers' generate; vllm: the vllm extra and a CUDA GPU")


@dataclass
class Optimizer:
    __open__ = True  # further keyword arguments of the optimizer class
    _target_: str = text("torch.optim.AdamW")
    _partial_: bool = boolean(True)
    weight_decay: float = real(0, 1, fix=0.0, why="decoupled weight decay")
    betas: Any = field(default=None, metadata={"rule": Rule(
        lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_real(b) and 0 <= b < 1 for b in v),
        "must be two numbers in [0, 1) (AdamW's moment decays)", "[0.9,0.95]")})
    eps: float = real(0, 1, lo_open=True, fix=1e-8, optional=True)


@dataclass
class Scheduler:
    __open__ = True
    _target_: str = text("distill.methods.base.warmup_cosine")
    _partial_: bool = boolean(True)
    warmup_ratio: float = real(0, 1, fix=0.1, why="the share of the steps spent warming up")


@dataclass
class ToyTaskSchema:
    alphabet_size: int = integer(2, 26, fix=12)
    min_len: int = integer(1, fix=3)
    max_len: int = integer(1, fix=8)
    ops: Any = field(default=None, metadata={"rule": Rule(
        lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(o in ("sort", "reverse", "shift") for o in v),
        "must be a non-empty list of sort, reverse, shift", "[sort,reverse,shift]")})
    w_correct: float = real(0, 1, fix=0.9)
    w_format: float = real(0, 1, fix=0.1)
    sft_format_share: float = real(0, 1, fix=0.35)
    pair_correct_share: float = real(0, 1, fix=0.5, why="the share of correct candidate answers in the pairs")
    pair_format_share: float = real(0, 1, fix=0.35, why="the share of bracketed candidate answers in the pairs")


@dataclass
class ToySizes:
    sft: int = integer(1, fix=8000, why="instruction rows")
    pairs: int = integer(1, fix=4000, why="preference pairs")
    prompts: int = integer(1, fix=1000, why="prompts for on-policy samples")
    eval: int = integer(1, fix=300, why="held-out evaluation prompts")
    val: int = integer(1, fix=200, why="validation rows")


@dataclass
class HubSplit:
    __open__ = True
    path: str = text("HuggingFaceH4/ultrafeedback_binarized")
    split: str = text("train")
    schema: str = choice("messages", "chosen_rejected_messages", "prompt", fix="prompt")


@dataclass
class ToyData:
    name: str = choice("toy", "full")
    seed: int = integer(0, fix=1234)
    task: Any = group(ToyTaskSchema)
    sizes: Any = group(ToySizes)


@dataclass
class HubData:
    __open__ = True
    name: str = choice("toy", "full", fix="full")
    seed: int = integer(0, fix=1234)
    sft: Any = group(HubSplit)
    pairs: Any = group(HubSplit)
    prompts: Any = group(HubSplit)
    eval: Any = group(HubSplit)
    val_fraction: float = real(0, 1, lo_open=True, hi_open=True, fix=0.02)
    max_rows: int = integer(1, fix="null", optional=True, why="null: every row")


@dataclass
class ToyArch:
    __open__ = True  # further arguments of the family's config class, checked by building the config
    num_hidden_layers: int = integer(1, fix=1)
    hidden_size: int = integer(1, fix=32)
    intermediate_size: int = integer(1, fix=64)
    num_attention_heads: int = integer(1, fix=4)
    num_key_value_heads: int = integer(1, fix=2, optional=True)
    head_dim: int = integer(1, fix=8, optional=True)


@dataclass
class Role:
    __open__ = True  # tokenizer / chat_style overrides of one role
    hub_id: str = text("owner/name")
    toy: Any = group(ToyArch)


@dataclass
class Model:
    __open__ = True
    family: str = text("gemma")
    config_class: str = text("transformers.LlamaConfig")
    decoder_layer: str = text("transformers.models.llama.modeling_llama.LlamaDecoderLayer", optional=True)
    n_params_teacher: float = real(0, lo_open=True, fix=1e9, optional=True)
    n_params_student: float = real(0, lo_open=True, fix=1e9, optional=True)
    hub_vocab_size: int = integer(1, fix=32000, optional=True)
    attn_implementation: str = choice("eager", "sdpa", "flash_attention_2", fix="eager")
    chat_style: str = field(default=None, metadata={"rule": Rule(
        lambda v: v in _chat_styles(), "must be a chat style of toyworld/tokenizer.py's STYLES", "gemma")})
    teacher: Any = group(Role)
    student: Any = group(Role)


@dataclass
class Trainer:
    __open__ = True  # every other lightning.Trainer argument; checked against its signature
    _target_: str = text("lightning.Trainer")
    accelerator: str = choice("cpu", "gpu", "cuda", "auto", "mps", "tpu", fix="cpu")
    devices: Any = field(default=None, metadata={"rule": Rule(
        lambda v: (_int(v) and (v >= 1 or v == -1)) or v == "auto" or (isinstance(v, (list, tuple)) and len(v) > 0),
        "must be an integer >= 1 (how many devices), -1 or auto (all), or a list of device ids", "1")})
    num_nodes: int = integer(1, fix=1)
    precision: Any = choice("32-true", "32", 32, "16-mixed", "16", 16, "bf16-mixed", "bf16", "bf16-true", "16-true",
                            "64-true", "64", 64, fix="32-true", why="Lightning's precision settings")
    gradient_clip_val: float = real(0, lo_open=True, fix=1.0, optional=True, why="null: no clipping")
    accumulate_grad_batches: int = integer(1, fix=1)
    log_every_n_steps: int = integer(1, fix=10)
    enable_progress_bar: bool = boolean(True)
    enable_model_summary: bool = boolean(False)
    deterministic: Any = choice(True, False, "warn", fix="false")


@dataclass
class EvalSchema:
    __open__ = True  # eval=all's benchmark settings: checked by eval.suite.check_config
    n_prompts: int = integer(1, fix=300, why="held-out prompts answered and scored")
    max_new_tokens: int = integer(1, fix=16)
    batch_size: int = integer(1, fix=100)
    n_boot: int = integer(1, fix=1000, why="bootstrap resamples")


@dataclass
class World:
    __open__ = True
    name: str = text("toy")
    source: str = choice("toy", "hub", why="toy: local tiny models; hub: the checkpoints named in model.*.hub_id")
    dtype: str = choice("float32", "bfloat16", "float16", "float64", fix="float32")
    advantage_top_k: int = integer(1, fix=5)


@dataclass
class TrainStage:
    steps: int = integer(0, fix=150, why="optimizer steps; 0 keeps the start model")
    batch_size: int = integer(1, fix=32, why="items per optimizer step")
    lr: float = real(0, 1, lo_open=True, fix="3e-4", why="the learning rate")
    seed: int = integer(0, fix=0, optional=True)
    beta: float = real(0, lo_open=True, fix=0.1, optional=True)


@dataclass
class Stages:
    max_length: int = integer(8, fix=40, why="tokens per training sequence")
    max_new_tokens: int = integer(1, fix=16, why="tokens per on-policy sample")
    sampling_seed: int = integer(0, fix=0)
    sft_teacher: Any = group(TrainStage)
    dpo_teacher: Any = group(TrainStage)
    sft_student: Any = group(TrainStage)
    distill: Any = group(TrainStage)


@dataclass
class Paths:
    __open__ = True
    root_dir: str = text(".")
    artifacts: str = text("${paths.root_dir}/artifacts")
    results: str = text("${paths.root_dir}/results")
    log_dir: str = text("${paths.root_dir}/logs")


@dataclass
class Top:
    """The composed config's top level (the method, judge and logger nodes have their own checks)."""

    __open__ = True
    seed: int = integer(0, fix=0, why="the distillation stage's seed")
    optimized_metric: str = text("toy/win_rate")
    checkpoint_every: int = integer(1, fix=100)
    dry_run: bool = boolean(False)
    generation: Any = group(Generation, optional=True)
    optimizer: Any = group(Optimizer)
    scheduler: Any = group(Scheduler)
    model: Any = group(Model)
    trainer: Any = group(Trainer)
    eval: Any = group(EvalSchema)
    world: Any = group(World)
    stages: Any = group(Stages)
    paths: Any = group(Paths, optional=True)


# ----------------------------------------------------------------------------------- checking
def show(v: Any) -> str:
    if isinstance(v, (DictConfig, ListConfig)):
        v = OmegaConf.to_container(v, resolve=False)
    return repr(v) if isinstance(v, str) else str(v).replace("True", "true").replace("False", "false")


def problem(key: str, value: Any, allowed: str, fix: str) -> str:
    return f"{key}={show(value)}: {allowed}; {fix}"


def _value(node: DictConfig, key: str, path: str, problems: list[str]):
    try:
        return node[key], True
    except Exception as e:  # noqa: BLE001 - an interpolation that cannot resolve, a missing value
        problems.append(f"{path}: cannot be read ({type(e).__name__}: {str(e).splitlines()[0]}); set {path} "
                        "to a value")
        return None, False


def check_node(node: Any, schema: type, path: str, problems: list[str]) -> None:
    """Check ``node`` (a config group) against ``schema``; append one line per problem."""
    if not isinstance(node, DictConfig):
        problems.append(problem(path, node, f"must be a group of keys ({', '.join(f.name for f in dataclasses.fields(schema))})",
                                f"restore {path} (e.g. pick a {path.split('.')[0]}= option)"))
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    if not getattr(schema, OPEN, False):
        for key in node:
            if key not in fields:
                problems.append(f"{path}.{key}: unknown key; {path} takes {', '.join(fields)}; "
                                f"remove {path}.{key} (or fix its spelling)")
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in node:
            rule = f.metadata.get("rule")
            if (rule is not None and not rule.optional) or (f.metadata.get("schema") and not f.metadata.get("optional")):
                if rule is not None:
                    problems.append(f"{sub}: missing; it {rule.allowed.removeprefix('must ')}; set +{sub}={rule.fix}")
                else:
                    problems.append(f"{sub}: missing group; restore it (pick a {name}= option)")
            continue
        value, ok = _value(node, name, sub, problems)
        if not ok:
            continue
        if f.metadata.get("schema"):
            if value is None and f.metadata.get("optional"):
                continue
            check_node(value, f.metadata["schema"], sub, problems)
            continue
        rule: Rule | None = f.metadata.get("rule")
        if rule is None or (value is None and rule.optional):
            continue
        plain = OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
        if not rule.test(plain):
            problems.append(problem(sub, value, rule.allowed, f"set {sub}={rule.fix}"))


def signature_keys(target: str) -> tuple[set[str], bool]:
    """The keyword arguments the class (or function) ``target`` takes, and whether it takes **kwargs."""
    from hydra.utils import get_object

    obj = get_object(target)
    params = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)
