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
Activations, the KV cache and CUDA's workspace come on top, except one activation the plan names
for the frozen forward passes (reference log-probabilities, teacher caches, PAD's scores) since it
is the largest for big vocabularies: the fp32 log-softmax of one batch, sequences × max_length ×
``model.hub_vocab_size`` × 4 bytes (``eval.batch_size`` sequences for caches and scores, 2 × one
device's micro-batch of pairs, the stage's batch over devices × nodes × accumulation, for a
reference pass). Reference log-probabilities (DPO),
teacher top-k caches (DCKD, ADPA) and teacher scores (PAD) are computed before training, so no
frozen model sits beside the trained one, except for a method whose plugin declares online work
(``Method.plan``'s ``online``: a teacher scoring, or the student generating, inside each step), whose
frozen model's weights are added to the stage's memory and whose tokens to its FLOPs.

Time (an ESTIMATE from FLOPs, not a measurement): a trained token costs 6·N FLOPs (forward and
backward), a token of a frozen forward pass (reference log-probabilities, teacher caches, PAD's
scores) 2·N, a generated token 2·N. FLOPs are turned into seconds at an assumed throughput,
``plan.peak_tflops`` × a utilisation per kind of work (``plan.mfu_train``, ``plan.mfu_forward``,
``plan.mfu_generate``; defaults in :data:`ASSUMPTIONS`: an H100's 989 dense bf16 TFLOP/s at 40%
for training and forward passes and 5% for generation, which is memory-bound token by token).
Training runs on every data-parallel GPU (``trainer.devices × trainer.num_nodes``, 8 when "auto"),
the other stages on one; a DPO stage's reference pass runs whole on every rank before training. Since the token counts are upper bounds (every sequence at
``stages.max_length``, every answer at its ``max_new_tokens``), so are the times, for the assumed
throughput; override ``+plan.peak_tflops=312`` (A100) etc. to plan for other hardware.

Epochs: a training stage's steps × batch over the rows it trains on (the data set's rows, less
``data.val_fraction`` held out for validation), so an experiment's step counts can be checked
against the papers' epochs.

Base checkpoints: ``model.hub_kind.<role>: base`` marks a hub checkpoint that is only pre-trained;
in ``world=full`` it must get its SFT stage (``stages.sft_<role>.steps > 0``), or the dry run
reports the problem (:func:`base_checkpoint_problems`).
"""
from __future__ import annotations

import logging
import math

from omegaconf import DictConfig, OmegaConf

from distill.artifacts import Artifact, ArtifactStore, fingerprint
from distill.methods.plugin import lookup
from distill.stages import Pipeline, visit_recipe

log = logging.getLogger(__name__)

UNKNOWN_TEMPLATE = "<tokenizer not downloaded>"
BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}

# The throughput the time estimate assumes (override any of them with ``plan.<key>=...``; ``+plan...``
# where the config has no ``plan`` node).
ASSUMPTIONS = {"gpu": "H100 SXM", "peak_tflops": 989.0, "mfu_train": 0.40, "mfu_forward": 0.40,
               "mfu_generate": 0.05}
# items per benchmark answered by each evaluated model in world=full (the benchmarks' own sets)
BENCH_ITEMS = {"alpaca_eval2": 805, "arena_hard": 500, "mt_bench": 160}   # MT-Bench: 80 questions × 2 turns


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
def walk(cfg: DictConfig) -> list[dict]:
    """The stages of ``python run.py`` for ``cfg``, in build order, each with its key and status."""
    store = _PlanStore(cfg.paths.artifacts)
    pipe = _PlanPipeline(cfg, store)
    pipe.sft("student")
    for name in cfg.method.get("teachers", []):
        getattr(pipe, name)()
    visit_recipe(pipe, cfg.method, nested=True)  # what the method's plugin declares, nested methods first
    final = pipe.distill()
    if cfg.world.source == "toy":  # the oracle's answers; the full world is scored by the benchmarks alone
        for art in (pipe.sft("teacher"), pipe.dpo_teacher(), pipe.sft("student"), final):
            pipe.generations(art)
    else:  # ... which also run the reference models of eval.benchmark_references
        refs = {"sft_teacher": lambda: pipe.sft("teacher"), "dpo_teacher": pipe.dpo_teacher,
                "sft_student": lambda: pipe.sft("student")}
        for name in cfg.eval.get("benchmark_references") or []:
            refs[name]()
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


def _hours(s: float) -> str:
    if s < 60:
        return f"{s:,.0f} s"
    if s < 3600:
        return f"{s / 60:,.0f} min"
    return f"{s / 3600:,.1f} h"


def assumptions(cfg: DictConfig) -> dict:
    """The throughput the time estimate assumes: :data:`ASSUMPTIONS`, overridden by ``cfg.plan``."""
    over = cfg.get("plan") or {}
    return {**ASSUMPTIONS, **(OmegaConf.to_container(over, resolve=True) if OmegaConf.is_config(over) else over)}


def seconds(flops: dict[str, float], gpus: int, assume: dict) -> float:
    """Estimated seconds for ``flops`` ({"train"|"forward"|"generate": FLOPs}) on ``gpus`` GPUs at
    ``assume["peak_tflops"]`` × the utilisation of each kind of work (``mfu_<kind>``)."""
    peak = float(assume["peak_tflops"]) * 1e12
    return sum(f / (gpus * peak * float(assume[f"mfu_{kind}"])) for kind, f in flops.items() if f)


def _train_rows(cfg: DictConfig, rows: dict[str, int], part: str) -> float:
    """Rows a stage trains on: toy sizes are training rows; hub sets lose ``data.val_fraction``
    (SFT data and pairs) to the validation split."""
    n = rows.get(part, 0)
    if cfg.data.get("sizes") or part not in ("sft", "pairs"):
        return float(n)
    return n * (1 - float(cfg.data.get("val_fraction") or 0))


def estimate(row: dict, cfg: DictConfig, params: dict[str, float], rows: dict[str, int],
             stage_of: dict[str, str], spec_of: dict[str, dict] | None = None) -> dict:
    """What a stage does, its tokens (upper bound), GPU memory (model states), FLOPs by kind, the
    GPUs it runs on and, for training stages, the epochs its steps make. ``stage_of``/``spec_of``:
    the stage and spec of every planned artifact by key (a stage's inputs). The distill stage's
    figures come from the method's plugin (``Method.plan``)."""
    spec_of = spec_of or {}
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

    def fwd(role, tokens):
        return {"forward": 2 * params[role] * tokens}

    def logits(n_seqs: int) -> dict:
        """The fp32 log-softmax over the vocabulary of one forward batch of ``n_seqs`` sequences."""
        V = cfg.model.get("hub_vocab_size") if cfg.world.source == "hub" else None
        if not V:
            return {}
        b = n_seqs * L * int(V) * 4
        return {"logits": b, "note": f"; logits of one batch ≈ {_gib(b)} ({n_seqs} × {L} × {int(V):,} fp32)"}

    def gen(role, tokens):
        return {"generate": 2 * params[role] * tokens}

    def schedule(steps, bs, part):
        n = _train_rows(cfg, rows, part)
        epochs = steps * bs / n if n else None
        return epochs, f", {steps} steps" + (f" ≈ {epochs:.2f} epochs of {part}" if epochs is not None else "")

    out = {"flops": {}, "gpus": 1, "epochs": None}
    if st == "data":
        what = "download the data sets" if cfg.world.source == "hub" else "write the toy task's data"
        return {**out, "what": what, "tokens": None, "mem": 0.0}
    if st in ("sft_teacher", "sft_student"):
        role = role_of[st]
        steps, bs = spec["train"]["steps"], spec["train"]["batch_size"]
        if steps == 0:
            return {**out, "what": f"{role} checkpoint as is (steps 0)", "tokens": 0, "mem": w * params[role]}
        mem, what = trained(role)
        epochs, sched = schedule(steps, bs, "sft")
        tokens = steps * bs * L
        return {"what": "SFT: " + what + sched, "tokens": tokens, "mem": mem, "epochs": epochs,
                "flops": {"train": 6 * params[role] * tokens}, "gpus": W}
    if st == "dpo_teacher":
        steps, bs = spec["train"]["steps"], spec["train"]["batch_size"]
        ref = 2 * rows.get("pairs", 0) * L  # one pass of the frozen start for the reference log-probs
        # the reference pass reads one device's micro-batch of pairs at a time (Pipeline.micro_batch)
        lg = logits(2 * max(1, int(bs) // (W * int(tc.get("accumulate_grad_batches", 1) or 1))))
        if steps == 0:
            return {**out, "what": "teacher checkpoint as is (steps 0; reference pass only)" + lg.get("note", ""),
                    "tokens": ref, "mem": w * params["teacher"], "flops": fwd("teacher", ref),
                    "logits": lg.get("logits", 0)}
        mem, what = trained("teacher")
        epochs, sched = schedule(steps, bs, "pairs")
        tokens = steps * bs * 2 * L
        return {"what": f"DPO (β_T={spec['train'].get('beta')}): " + what + sched + lg.get("note", ""),
                "tokens": tokens + ref, "mem": mem, "epochs": epochs, "gpus": W, "logits": lg.get("logits", 0),
                "forward_mem": w * params["teacher"],  # the reference pass holds the whole (unsharded) model
                # every rank computes the reference log-probabilities over all pairs before training
                "flops": {"train": 6 * params["teacher"] * tokens, **fwd("teacher", ref * W)}}
    if st == "distill":
        m = spec["method"]
        how = lookup(OmegaConf.create(m)).plan(m)  # the method plugin's own figures
        seqs = int(how.get("seqs", 2))
        steps, bs = spec["train"]["steps"], spec["train"]["batch_size"]
        mem, what = trained("student")
        epochs, sched = schedule(steps, bs, how.get("rows", "pairs"))
        tokens = steps * bs * seqs * L
        ref = 2 * rows.get("pairs", 0) * L if how.get("reference_pass") else 0  # e.g. DPO's reference pass
        flops = {"train": 6 * params["student"] * tokens, **fwd("student", ref * W)}
        notes = []
        for work_kind, role, n_seqs, *share in how.get("online", ()):  # frozen models run inside each step
            n_tok = steps * bs * n_seqs * (share[0] if share else 1.0) * (new if work_kind == "generate" else L)
            flops[work_kind] = flops.get(work_kind, 0.0) + 2 * params[role] * n_tok  # shared by the W ranks
            notes.append(f"{role} {'generates' if work_kind == 'generate' else 'scores'} ≤ {_tokens(n_tok)} tokens "
                         "online")
            if work_kind == "forward":
                mem += w * params[role]  # the online teacher sits beside the trained student
        return {"what": f"{m['name']} (lr {spec['train'].get('lr')}): {what}{sched}"
                        + (f"; {', '.join(notes)}" if notes else ""), "tokens": tokens + ref,
                "mem": mem, "epochs": epochs, "gpus": W, "flops": flops}
    if st == "teacher_cache":
        n_models = len(spec["teachers"])
        who = " + ".join(stage_of.get(t, "teacher").replace("dpo_teacher", "π_dpo").replace("sft_teacher", "π_ref")
                         for t in spec["teachers"])
        if "split" in spec["source"]:  # a split of pairs: chosen and rejected
            split = spec["source"]["split"]
            n_seq, what = 2 * rows.get(split, 0), f"{who} top-k over the {split}"
        else:  # a sample set: its prompts × responses kept per prompt
            sp = spec_of.get(spec["source"].get("samples")) or {}
            sampling = sp.get("sampling", {})
            per_prompt = 1 if sampling.get("greedy") else int(sampling.get("n_keep", sampling.get("n_samples", 1)))
            n_seq = rows.get(sp.get("split", "pairs"), 0) * per_prompt
            what = f"{who} top-k over ŷ" if sampling.get("greedy") else f"{who} top-k over the samples"
        tokens = n_models * n_seq * L
        lg = logits(int(cfg.eval.batch_size))
        return {**out, "what": what + f" (k={spec['k']})" + lg.get("note", ""), "tokens": tokens,
                "mem": n_models * w * params["teacher"], "flops": fwd("teacher", tokens), "logits": lg.get("logits", 0)}
    if st == "samples":
        role = role_of.get(spec["stage"], "student")
        n = int(spec["sampling"].get("n_samples", 1))
        split = spec["split"]
        what = f"{'greedy ŷ' if spec['sampling'].get('greedy') else f'{n} samples'}/prompt of {split}"
        tokens = rows.get(split, 0) * n * new
        return {**out, "what": what + f" (≤ {new} new tokens)", "tokens": tokens, "mem": w * params[role],
                "flops": gen(role, tokens)}
    if st == "pad_scores":  # sequence scores of a sample set (Pipeline.sequence_scores)
        sampling = (spec_of.get(spec["samples"]) or {}).get("sampling", {})
        per_prompt = int(sampling.get("n_keep", sampling.get("n_samples", 1)))
        tokens = rows.get("prompts", 0) * per_prompt * L
        lg = logits(int(cfg.eval.batch_size))
        return {**out, "what": "π_dpo scores of the samples" + lg.get("note", ""), "tokens": tokens,
                "mem": w * params["teacher"], "flops": fwd("teacher", tokens), "logits": lg.get("logits", 0)}
    if st == "generate":
        role = role_of.get(spec["stage"], "student")
        n = min(int(spec["n"]), rows.get(spec["split"], spec["n"]))
        who = stage_of.get(spec["model"], spec["stage"])
        tokens = n * cfg.eval.max_new_tokens
        return {**out, "what": f"answers of {who} ({n} prompts)", "tokens": tokens, "mem": w * params[role],
                "flops": gen(role, tokens)}
    return {**out, "what": st, "tokens": None, "mem": None}


def benchmark_rows(cfg: DictConfig, params: dict[str, float]) -> list[dict]:
    """``eval=all``: each benchmark's answers, by the student and each of ``eval.benchmark_references``
    (the teachers at the teacher's size), as plan rows; the judge's calls are not estimated."""
    ec = cfg.eval
    if "benchmarks" not in ec:
        return []
    w = BYTES.get(str(cfg.world.dtype), 4)
    refs = list(ec.get("benchmark_references") or [])
    models = [("student", "student")] + [(r, "teacher" if "teacher" in r else "student") for r in refs]
    out = []
    for name in ec.benchmarks:
        bc = ec.get(name) or {}
        label = "student" + "".join(f", {r}" for r in refs)
        if name == "open_llm":
            out.append({"stage": "benchmark", "key": name, "exists": False, "provisional": False,
                        "est": {"what": f"{name}: lm-eval log-likelihoods ({label}; not estimated)", "tokens": None,
                                "mem": max(w * params[role] for _, role in models), "flops": {}, "gpus": 1,
                                "epochs": None}})
            continue
        items = BENCH_ITEMS.get(name, 0) if cfg.world.source == "hub" else int(bc.get("n_toy", 0) or 0)
        if name == "mt_bench" and cfg.world.source != "hub":
            items *= 2
        new = int(bc.get("max_new_tokens") or ec.get("max_new_tokens") or 0)
        tokens = items * new * len(models)
        flops = {"generate": sum(2 * params[role] * items * new for _, role in models)}
        out.append({"stage": "benchmark", "key": name, "exists": False, "provisional": False,
                    "est": {"what": f"{name}: {items} answers × ≤ {new} new tokens ({label})", "tokens": tokens,
                            "mem": max(w * params[role] for _, role in models), "flops": flops, "gpus": 1,
                            "epochs": None}})
    return out


def base_checkpoint_problems(cfg: DictConfig) -> list[str]:
    """Base (pre-trained only) hub checkpoints that the config would use without their SFT stage.

    ``model.hub_kind.<role>: base`` marks one; in ``world=full`` its ``stages.sft_<role>.steps``
    must be > 0 (the ADPA recipe instruction-tunes π_ref and the student on the SFT data first)."""
    if cfg.world.source != "hub":
        return []
    kinds = cfg.model.get("hub_kind") or {}
    problems = []
    for role in ("teacher", "student"):
        steps = OmegaConf.select(cfg, f"stages.sft_{role}.steps", default=0)
        if kinds.get(role) == "base" and not steps:
            problems.append(
                f"stages.sft_{role}.steps={steps}: model.{role}.hub_id={cfg.model[role].hub_id} is a base checkpoint "
                f"(model.hub_kind.{role}=base) and needs its SFT stage on the instruction data; set "
                f"stages.sft_{role}.steps > 0 (3 epochs: 3 × rows / stages.sft_{role}.batch_size), or pick an "
                f"experiment= that does (see conf/experiment/)")
    return problems


def plan(cfg: DictConfig) -> tuple[list[dict], dict]:
    """The plan's rows (each a :func:`walk` row with its estimate under ``est``, then the benchmarks'
    rows) and a summary: tokens, estimated time and GPU-hours of what is to be built, peak GPU memory."""
    rows_ = walk(cfg)
    params, rows = n_params(cfg), _rows(cfg)
    stage_of = {r["key"]: r["stage"] for r in rows_}
    spec_of = {r["key"]: r["spec"] for r in rows_}
    for r in rows_:
        r["est"] = estimate(r, cfg, params, rows, stage_of, spec_of)
    rows_ += benchmark_rows(cfg, params)
    assume = assumptions(cfg)
    total = {"tokens": 0.0, "seconds": 0.0, "gpu_hours": 0.0, "peak_mem": 0.0, "peak_forward": 0.0, "to_build": 0}
    for r in rows_:
        e = r["est"]
        e["seconds"] = seconds(e["flops"], e["gpus"], assume)
        total["peak_mem"] = max(total["peak_mem"], e["mem"] or 0.0)
        total["peak_forward"] = max(total["peak_forward"], e.get("forward_mem", e["mem"] or 0.0) + e.get("logits", 0))
        if r["exists"]:
            continue
        total["to_build"] += r["stage"] != "benchmark"
        total["tokens"] += e["tokens"] or 0
        total["seconds"] += e["seconds"]
        total["gpu_hours"] += e["seconds"] * e["gpus"] / 3600
    total["params"], total["assumptions"] = params, assume
    return rows_, total


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def dry_run(cfg: DictConfig) -> float:
    """Print the plan of ``cfg``'s run; build and download nothing. Returns NaN (no score)."""
    from rich.console import Console
    from rich.table import Table

    from distill.validate import ConfigError, validate

    problems, base = None, base_checkpoint_problems(cfg)
    try:
        validate(cfg)  # logs its warnings, e.g. world=full on a machine without a GPU
    except ConfigError as e:
        problems = str(e)
    rows, total = plan(cfg)
    params, assume = total["params"], total["assumptions"]
    tc = cfg.trainer
    world = _world_size(tc)
    strategy = OmegaConf.select(tc, "strategy._target_", default=None) or tc.get("strategy") or "single device"
    bs = cfg.stages.distill.batch_size
    accumulate = int(tc.get("accumulate_grad_batches", 1) or 1)
    micro = f"{bs / (world * accumulate):g}" if world else f"{bs}/(GPUs × {accumulate})"

    console = Console(width=max(Console().width, 170))
    console.print(f"[bold]dry run[/bold]: world={cfg.world.name} model={cfg.model.family} method={cfg.method.name}"
                  f" ({cfg.model.teacher.hub_id} → {cfg.model.student.hub_id}) — nothing is downloaded or built")
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
                    ("tokens ≤", {"justify": "right"}), ("GPU memory", {"justify": "right"}),
                    ("time ≤ (est.)", {"justify": "right"}), ("GPUs", {"justify": "right"})):
        table.add_column(col, **kw)
    for i, row in enumerate(rows, 1):
        e = row["est"]
        status = ("[green]exists[/green]" if row["exists"] else
                  "[yellow]build (key needs the tokenizer)[/yellow]" if row["provisional"] else
                  "[cyan]run[/cyan]" if row["stage"] == "benchmark" else "[cyan]build[/cyan]")
        table.add_row(str(i), row["stage"], e["what"], row["key"], status,
                      "—" if e["tokens"] is None else _tokens(e["tokens"]),
                      "—" if not e["mem"] else _gib(e["mem"]),
                      "—" if not e["flops"] or row["exists"] else _hours(e["seconds"]), str(e["gpus"]))
    console.print(table)
    w = BYTES.get(str(cfg.world.dtype), 4)
    console.print(f"to build: {total['to_build']} of {sum(r['stage'] != 'benchmark' for r in rows)} artifacts, "
                  f"≤ {_tokens(total['tokens'])} tokens; estimated time ≤ {_hours(total['seconds'])} "
                  f"({total['gpu_hours']:,.1f} GPU-hours); peak GPU memory (model states) {_gib(total['peak_mem'])}"
                  + (f", {_gib(total['peak_forward'])} with the logits of a frozen forward batch (caches, scores, "
                     "reference pass: lower eval.batch_size or the stage's batch if it does not fit)"
                     if total["peak_forward"] > total["peak_mem"] else ""))
    console.print(f"time = an ESTIMATE, not a measurement: 6·N FLOPs per trained token, 2·N per forward or generated "
                  f"token, at an assumed {assume['gpu']} {assume['peak_tflops']:g} TFLOP/s × utilisation "
                  f"{assume['mfu_train']:g} (train), {assume['mfu_forward']:g} (forward), {assume['mfu_generate']:g} "
                  f"(generate); training on the {world or 8} data-parallel GPUs, other stages on one; an upper bound "
                  f"like the tokens (override with +plan.peak_tflops=..., +plan.mfu_generate=...)")
    console.print(f"GPU memory = model states only: trained 4·w·N (weights, grads, AdamW m and v; w = {w} bytes for "
                  f"{cfg.world.dtype}) / sharding (FSDP, ZeRO-3: ÷W; ZeRO-2: w·N + 3·w·N/W; DDP: none), frozen w·N; "
                  "activations and the KV cache come on top")
    if problems:
        console.print(f"[red]the run would stop before building anything[/red]: {problems}", markup=True,
                      highlight=False)
    for p in base:
        console.print(f"[red]a base checkpoint without its SFT stage[/red]: {p}", markup=True, highlight=False)
    return math.nan
