"""The dry run: ``python run.py world=full model=gemma method=pad dry_run=true`` prints what a run
would do and stops, downloading and building nothing.

For each stage, in the order the run builds them: the artifact key (the same hash the run computes,
from the same :class:`~distill.stages.Pipeline` code) and whether it exists or will be built, an
upper bound on the tokens the stage processes, and the GPU memory its model states need.

Tokens (upper bounds, every sequence at ``stages.max_length``): training = steps × batch ×
sequences per item × max_length; teacher passes = sequences × max_length; generation = prompts ×
responses per prompt × max_new_tokens (new tokens). Data sizes come from ``data.sizes`` (toy) or
``world.approx_rows`` capped by ``data.max_rows`` (full).

GPU memory of model states, N parameters, w bytes per weight (``world.dtype``: 4 for float32, 2 for
bfloat16), W data-parallel GPUs:
  trained model   N·(w + w + 2w) = 4·w·N   weights + gradients + AdamW's two moments (torch's AdamW
                                            keeps them in the parameter dtype)
                  per GPU: DDP 4wN; ZeRO-2 wN + 3wN/W; FSDP / ZeRO-3 4wN/W
  frozen model    w·N                       (teachers, generation, caches; never sharded here)
Activations, the KV cache and CUDA's workspace come on top. Reference log-probabilities (DPO),
teacher top-k caches (DCKD, ADPA) and teacher scores (PAD) are computed before training, so no
frozen model sits beside the trained one.
"""
from __future__ import annotations

import logging
import math

from omegaconf import DictConfig, OmegaConf

from distill.artifacts import Artifact, ArtifactStore, fingerprint
from distill.stages import Pipeline

log = logging.getLogger(__name__)

UNKNOWN_TEMPLATE = "<tokenizer not downloaded>"
BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}


class _PlanStore(ArtifactStore):
    """Records (stage, key, spec, exists) instead of building; never writes."""

    def __init__(self, root):
        super().__init__(root)
        self.rows: dict[tuple[str, str], dict] = {}

    def get_or_build(self, stage, spec, build) -> Artifact:
        key = fingerprint(spec)
        path = self.root / stage / key
        exists = (path / "manifest.json").exists()
        provisional = UNKNOWN_TEMPLATE in repr(spec)
        self.rows.setdefault((stage, key), {"stage": stage, "key": key, "spec": spec, "exists": exists,
                                            "provisional": provisional})
        return Artifact(stage, key, path, reused=exists)


class _PlanPipeline(Pipeline):
    """The pipeline's key computation with hub tokenizers read from the local cache only."""

    def tokenizer(self, role: str = "student"):
        if self.source == "toy":
            return super().tokenizer(role)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.family(role)[role].hub_id, local_files_only=True)

    def _cache_spec(self, teachers, source, k):
        try:
            return super()._cache_spec(teachers, source, k)
        except (OSError, ValueError):  # not in the local cache: the key needs the tokenizer's fingerprint
            from distill.cache import LAYOUT

            return {"teachers": [t.key for t in teachers], "source": source, "k": k, "layout": LAYOUT,
                    "max_length": self.cfg.stages.max_length, "template": UNKNOWN_TEMPLATE}


# ---------------------------------------------------------------------------- the stages a method needs
def _nested(pipe: Pipeline, m: DictConfig) -> None:
    """Visit the artifacts a method's recipe builds inside its distill stage (in build order)."""
    recipe = m.recipe._target_.rsplit(".", 1)[-1]
    student = pipe.sft("student")
    if recipe == "dckd":
        pipe.pair_cache(m.top_k)
    elif recipe in ("adpa", "adpa_plus"):
        start = student
        if recipe == "adpa_plus":
            _nested(pipe, m.dckd)
            start = pipe.distill(method_cfg=m.dckd)
        pipe.onpolicy_cache(pipe.samples(start, "pairs", greedy=True), m.top_k)
    elif recipe == "pad":
        samples = pipe.samples(student, "prompts", greedy=False)
        pipe.pad_scores(samples)
        if float(m.get("calibration_lambda") or 0) > 0:
            pipe.pad_mcq(samples)


def walk(cfg: DictConfig) -> list[dict]:
    """The stages of ``python run.py`` for ``cfg``, in build order, each with its key and status."""
    store = _PlanStore(cfg.paths.artifacts)
    pipe = _PlanPipeline(cfg, store)
    pipe.sft("student")
    for name in cfg.method.get("teachers", []):
        getattr(pipe, name)()
    _nested(pipe, cfg.method)
    final = pipe.distill()
    for art in (pipe.sft("teacher"), pipe.dpo_teacher(), pipe.sft("student"), final):
        pipe.generations(art)
    return list(store.rows.values())


# ---------------------------------------------------------------------------- sizes
def _rows(cfg: DictConfig) -> dict[str, int]:
    if cfg.data.get("sizes"):
        return {k: int(v) for k, v in cfg.data.sizes.items()}
    rows = {k: int(v) for k, v in (cfg.world.get("approx_rows") or {}).items()}
    cap = cfg.data.get("max_rows")
    return {k: min(v, cap) if cap else v for k, v in rows.items()}


def _toy_params(pipe: Pipeline, role: str) -> int:
    import torch
    from hydra.utils import get_class
    from transformers import AutoModelForCausalLM

    f = pipe.family(role)
    tok = pipe.tokenizer(role)
    config = get_class(f.config_class)(vocab_size=len(tok), max_position_embeddings=pipe.cfg.stages.max_length * 2,
                                       **dict(f[role].toy))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def n_params(cfg: DictConfig) -> dict[str, float]:
    """Parameters of the teacher and the student: counted (toy) or from the model config (hub)."""
    if cfg.world.source == "toy":
        pipe = Pipeline(cfg, ArtifactStore(cfg.paths.artifacts))
        return {role: float(_toy_params(pipe, role)) for role in ("teacher", "student")}
    return {"teacher": float(cfg.model.n_params_teacher), "student": float(cfg.model.n_params_student)}


def _world_size(tc: DictConfig) -> int | None:
    devices = tc.get("devices", 1)
    if isinstance(devices, int) and devices > 0:
        return devices * int(tc.get("num_nodes", 1) or 1)
    if OmegaConf.is_list(devices) or isinstance(devices, list):
        return len(devices) * int(tc.get("num_nodes", 1) or 1)
    return None  # "auto" / -1: every visible GPU, unknown here


def _sharding(tc: DictConfig) -> str:
    target = str(OmegaConf.select(tc, "strategy._target_", default="") or tc.get("strategy") or "")
    if "fsdp" in target.lower():
        return "full"
    if "deepspeed" in target.lower():
        return "full" if OmegaConf.select(tc, "strategy.stage") == 3 else "zero2"
    return "none"


def train_bytes_per_gpu(n: float, w: int, sharding: str, world: int) -> float:
    """Model-state bytes per GPU of a trained model (see the module docstring)."""
    if sharding == "full":
        return 4 * w * n / world
    if sharding == "zero2":
        return w * n + 3 * w * n / world
    return 4 * w * n


def _gib(b: float) -> str:
    return f"{b / 2**30:,.1f} GiB" if b >= 2**27 else f"{b / 2**20:,.2f} MiB"


def _tokens(t: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if t >= size:
            return f"{t / size:,.1f}{unit}"
    return f"{t:,.0f}"


def estimate(row: dict, cfg: DictConfig, params: dict[str, float], rows: dict[str, int],
             stage_of: dict[str, str]) -> dict:
    """What a stage does, its tokens (upper bound) and its GPU memory (model states)."""
    st, spec = row["stage"], row["spec"]
    L, new = cfg.stages.max_length, cfg.stages.max_new_tokens
    w = BYTES.get(str(cfg.world.dtype), 4)
    tc = cfg.trainer
    world = _world_size(tc)
    shard = _sharding(tc)
    W = world or 8
    role_of = {"sft_teacher": "teacher", "dpo_teacher": "teacher", "sft_student": "student", "distill": "student"}

    def trained(role):
        per = train_bytes_per_gpu(params[role], w, shard, W)
        return per, f"train {role} ({params[role]:.3g})" + ("" if world else f", per GPU at {W} GPUs")

    if st == "data":
        what = "download the data sets" if cfg.world.source == "hub" else "write the toy task's data"
        return {"what": what, "tokens": None, "mem": 0.0}
    if st in ("sft_teacher", "sft_student"):
        role = role_of[st]
        steps, bs = spec["train"]["steps"], spec["train"]["batch_size"]
        if steps == 0:
            return {"what": f"{role} checkpoint as is (steps 0)", "tokens": 0, "mem": w * params[role]}
        mem, what = trained(role)
        return {"what": "SFT: " + what, "tokens": steps * bs * L, "mem": mem}
    if st == "dpo_teacher":
        steps, bs = spec["train"]["steps"], spec["train"]["batch_size"]
        mem, what = trained("teacher")
        ref = 2 * rows.get("pairs", 0) * L  # one pass of the frozen start for the reference log-probs
        return {"what": "DPO (β_T): " + what, "tokens": steps * bs * 2 * L + ref, "mem": mem}
    if st == "distill":
        m = spec["method"]
        seqs = int(m.get("n_keep", 2)) if "n_keep" in m else 2
        steps, bs = spec["train"]["steps"], spec["train"]["batch_size"]
        mem, what = trained("student")
        return {"what": f"{m['name']}: {what}", "tokens": steps * bs * seqs * L, "mem": mem}
    if st == "teacher_cache":
        n_models = len(spec["teachers"])
        if spec["source"].get("split") == "pairs":
            n_seq, what = 2 * rows.get("pairs", 0), "π_dpo top-k over the pairs"
        else:
            n_seq, what = rows.get("pairs", 0), "π_dpo top-k + π_ref over ŷ"
        return {"what": what + f" (k={spec['k']})", "tokens": n_models * n_seq * L,
                "mem": n_models * w * params["teacher"]}
    if st == "samples":
        role = role_of.get(spec["stage"], "student")
        n = int(spec["sampling"].get("n_samples", 1))
        split = spec["split"]
        what = f"{'greedy ŷ' if spec['sampling'].get('greedy') else f'{n} samples'}/prompt of {split}"
        return {"what": what, "tokens": rows.get(split, 0) * n * new, "mem": w * params[role]}
    if st == "pad_scores":
        n_keep = int(cfg.method.get("n_keep", 1))
        return {"what": "π_dpo scores of the samples", "tokens": rows.get("prompts", 0) * n_keep * L,
                "mem": w * params["teacher"]}
    if st == "generate":
        role = role_of.get(spec["stage"], "student")
        n = min(int(spec["n"]), rows.get(spec["split"], spec["n"]))
        who = stage_of.get(spec["model"], spec["stage"])
        return {"what": f"answers of {who}", "tokens": n * cfg.eval.max_new_tokens, "mem": w * params[role]}
    return {"what": st, "tokens": None, "mem": None}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def dry_run(cfg: DictConfig) -> float:
    """Print the plan of ``cfg``'s run; build and download nothing. Returns NaN (no score)."""
    from rich.console import Console
    from rich.table import Table

    from distill.validate import ConfigError, validate

    try:
        problems = None
        validate(cfg)  # logs its warnings, e.g. world=full on a machine without a GPU
    except ConfigError as e:
        problems = str(e)
    plan = walk(cfg)
    params, rows = n_params(cfg), _rows(cfg)
    stage_of = {r["key"]: r["stage"] for r in plan}
    tc = cfg.trainer
    world = _world_size(tc)
    strategy = OmegaConf.select(tc, "strategy._target_", default=None) or tc.get("strategy") or "single device"
    bs = cfg.stages.distill.batch_size
    accumulate = int(tc.get("accumulate_grad_batches", 1) or 1)
    micro = f"{bs / (world * accumulate):g}" if world else f"{bs}/(GPUs × {accumulate})"

    console = Console(width=max(Console().width, 150))
    console.print(f"[bold]dry run[/bold]: world={cfg.world.name} model={cfg.model.family} method={cfg.method.name}"
                  f" — nothing is downloaded or built")
    console.print(f"trainer: {tc.accelerator}, {strategy}, devices={tc.devices}, num_nodes={tc.get('num_nodes', 1)},"
                  f" precision={tc.precision}, accumulate_grad_batches={accumulate}; distill batch {bs} = "
                  f"{micro} per device and micro-step")
    if cfg.world.source == "hub" and not _cuda():
        console.print("[yellow]warning: no CUDA GPU on this machine; world=full downloads the hub checkpoints and "
                      "data sets and trains on GPUs: run it on a GPU machine (here, use world=toy)[/yellow]")
    console.print(f"artifacts: {cfg.paths.artifacts}; parameters: teacher {params['teacher']:.3g}, "
                  f"student {params['student']:.3g}; weights in {cfg.world.dtype}")
    table = Table(title="plan (in build order)")
    for col, kw in (("#", {"justify": "right"}), ("stage", {}), ("what", {}), ("key", {}), ("status", {}),
                    ("tokens ≤", {"justify": "right"}), ("GPU memory", {"justify": "right"})):
        table.add_column(col, **kw)
    total_tokens = 0.0
    for i, row in enumerate(plan, 1):
        e = estimate(row, cfg, params, rows, stage_of)
        status = ("[green]exists[/green]" if row["exists"] else
                  "[yellow]build (key needs the tokenizer)[/yellow]" if row["provisional"] else "[cyan]build[/cyan]")
        if not row["exists"] and e["tokens"]:
            total_tokens += e["tokens"]
        table.add_row(str(i), row["stage"], e["what"], row["key"], status,
                      "—" if e["tokens"] is None else _tokens(e["tokens"]),
                      "—" if not e["mem"] else _gib(e["mem"]))
    console.print(table)
    w = BYTES.get(str(cfg.world.dtype), 4)
    console.print(f"to build: {sum(not r['exists'] for r in plan)} of {len(plan)} artifacts, ≤ {_tokens(total_tokens)} "
                  "tokens")
    console.print(f"GPU memory = model states only: trained 4·w·N (weights, grads, AdamW m and v; w = {w} bytes for "
                  f"{cfg.world.dtype}) / sharding (FSDP, ZeRO-3: ÷W; ZeRO-2: w·N + 3·w·N/W; DDP: none), frozen w·N; "
                  "activations and the KV cache come on top")
    if problems:
        console.print(f"[red]the run would stop before building anything[/red]: {problems}", markup=True,
                      highlight=False)
    return math.nan
