"""The pipeline's stages. Each returns an :class:`~distill.artifacts.Artifact` whose key is a hash
of the configuration that determines it (and of the keys of the artifacts it reads), so a second
run, a multirun job or a sweep reuses what is already built.

Keys are complete by construction: a training stage's spec holds the *whole* resolved config
subtrees it reads (``trainer``, ``optimizer``, ``scheduler``, ``stages.<stage>``, the model family
without the other role, ...), so a key added to one of them later is part of the key without
anyone listing it; only the leaves in :data:`NEUTRAL` are left out, each with the reason it cannot
change what the stage writes. Generation, sampling and cache builds read their settings from the
spec they are keyed by. ``tests/test_reliability_keys.py`` changes every leaf of the config one at
a time and checks that exactly the artifacts declared to depend on it get a new key.

    data ─► sft_teacher (π_ref) ─► dpo_teacher (π_dpo) ─┐
        └─► sft_student (π_sft) ─────────────────────────┴─► distill(method) ─► generate ─► oracle
"""
from __future__ import annotations

import copy
import logging
import random
from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, ListConfig, OmegaConf

from distill import data as D
from distill import files
from distill import progress
from distill.artifacts import Artifact, ArtifactStore, KeyStore
from distill.generation import generate
from distill.losses.common import sequence_logps
from distill.methods.base import response_logits
from distill.models import build_model, build_tokenizer, inference_device, load_pretrained, save_pretrained
from distill.runs import stage_logger
from distill.training import fit
from toyworld.task import ToyTask

log = logging.getLogger(__name__)


plain = files.plain  # a config node as plain data


# Leaves inside the config subtrees a stage reads that cannot change what the stage writes; they are
# left out of its key (everything else in those subtrees is in it).
NEUTRAL: dict[str, str] = {
    "trainer.log_every_n_steps": "how often metrics are logged, not what is trained",
    "trainer.enable_progress_bar": "console output only",
    "trainer.enable_model_summary": "console output only",
    # the data-parallel layout: every optimizer step sees the same batch on one process or many
    # (StepBatchSampler), so the weights agree up to the order of float sums (tests/test_ddp.py);
    # a teacher trained on one GPU is reused by a run on eight
    "trainer.devices": "the data-parallel layout (same batches per step)",
    "trainer.num_nodes": "the data-parallel layout (same batches per step)",
    "trainer.strategy": "the data-parallel layout (same batches per step)",
    "trainer.accumulate_grad_batches": "the data-parallel layout (same batches per step)",
    "model.n_params_teacher": "the dry run's memory estimate only",
    "model.n_params_student": "the dry run's memory estimate only",
    "model.hub_vocab_size": "the dry run's memory estimate only",
}


def _drop(value, path: str, drop: tuple[str, ...]):
    """``value`` (the plain subtree at ``path``) without the leaves named in ``drop``."""
    if not isinstance(value, dict):
        return value
    return {k: _drop(v, f"{path}.{k}", drop) for k, v in value.items() if f"{path}.{k}" not in drop}


def config_part(cfg: DictConfig, path: str, drop: tuple[str, ...] = ()):
    """The resolved subtree (or leaf) of ``cfg`` at ``path``, without :data:`NEUTRAL` leaves."""
    node = OmegaConf.select(cfg, path, throw_on_missing=True)
    value = OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node
    return _drop(value, path, (*NEUTRAL, *drop))


class Pipeline:
    """Holds the composed config and the artifact store; each method builds the stage it names."""

    def __init__(self, cfg: DictConfig, store: ArtifactStore | None = None):
        self.cfg = cfg
        self.store = store or ArtifactStore(cfg.paths.artifacts)
        self.source = cfg.world.source
        # frozen models (samples, caches, scores, answers, the DPO reference pass) run here: CUDA when
        # present (eval.device: auto), whatever the trainer; not part of any key, like the GPU layout
        self.device = inference_device(OmegaConf.select(cfg, "eval.device", default="auto") or "auto")
        self._memo: dict[tuple, Artifact] = {}  # data, sft, dpo_teacher: asked for many times per run
        self._teacher_data: dict | None = None

    def _once(self, name: str, make) -> Artifact:
        if name not in self._memo:
            self._memo[name] = make()
        return self._memo[name]

    def _get(self, stage: str, spec: dict, build, label: str | None = None) -> Artifact:
        """``store.get_or_build``, with the build running under its stage's name (``label``, default
        ``stage``) so its progress bars and lines say which stage they belong to."""
        def staged(out, work):
            with progress.stage(label or stage, timer=True):
                return build(out, work)

        return self.store.get_or_build(stage, spec, staged)

    # ------------------------------------------------------------------ data
    def data(self) -> Artifact:
        return self._once(("data",), lambda: self._get("data", self.reads("data"), self._build_data))

    def _build_data(self, out: Path, work: Path) -> None:
        dc = self.cfg.data
        if dc.name == "toy":
            task, rng = self.task(), random.Random(dc.seed)
            sizes = dc.sizes
            D.write_jsonl(out / "sft.jsonl", task.sft_rows(sizes.sft, rng))
            D.write_jsonl(out / "val_sft.jsonl", task.sft_rows(sizes.val, rng))
            D.write_jsonl(out / "pairs.jsonl", task.preference_rows(sizes.pairs, rng))
            D.write_jsonl(out / "val_pairs.jsonl", task.preference_rows(sizes.val, rng))
            D.write_jsonl(out / "prompts.jsonl", task.prompt_rows(sizes.prompts, rng))
            D.write_jsonl(out / "eval.jsonl", task.prompt_rows(sizes.eval, rng))
            D.write_jsonl(out / "eval_two_turn.jsonl", task.two_turn_rows(sizes.eval, rng))
        else:
            from distill.hub_data import build_hub_data

            build_hub_data(dc, out)

    def task(self) -> ToyTask:
        return ToyTask(**plain(self.cfg.data.task))

    def rows(self, name: str, kind: str | None = None) -> list[dict]:
        return D.read_jsonl(self.data().path / f"{name}.jsonl", kind)

    # ------------------------------------------------------------------ models
    def family(self, role: str) -> DictConfig:
        """The family config as ``role`` sees it: ``model.<role>.tokenizer``/``chat_style`` override
        the family's (a teacher with another tokenizer, for cross-tokenizer PAD)."""
        m = self.cfg.model
        r = m[role]
        return OmegaConf.create({**plain(m), "chat_style": r.get("chat_style") or m.chat_style,
                                 "tokenizer": {**plain(m.get("tokenizer") or {}), **plain(r.get("tokenizer") or {})}})

    def tokenizer(self, role: str = "student"):
        words = self.task().corpus() if self.source == "toy" else None
        return build_tokenizer(self.family(role), self.source, words, role)

    def reads(self, *paths: str, drop: tuple[str, ...] = ()) -> dict:
        """The part of a key that comes from the config: each path's whole resolved subtree."""
        return {p: config_part(self.cfg, p, drop) for p in paths}

    def _model_spec(self, role: str) -> dict:
        """The model family as ``role`` builds it: every key of ``model`` but the other role's node."""
        other = "student" if role == "teacher" else "teacher"
        return self.reads("model", "world.source", drop=(f"model.{other}",))

    def _training_spec(self, stage_cfg) -> dict:
        """What every training stage reads besides its own ``stages.<stage>`` node."""
        return {"train": plain(stage_cfg),
                **self.reads("stages.max_length", "optimizer", "scheduler", "trainer", "world.dtype")}

    def train(self, module, train_set, val_set, collate, stage_cfg, out: Path, work: Path, logger=None):
        """Fit ``module``; without a ``logger`` the curves go to ``out/logs`` (CSV) and, for the
        teachers and the SFT student under a W&B logger, to a W&B run of the stage's own."""
        stage_run = None
        if logger is None:
            stage_run = stage_logger(self.cfg, progress.current_stage() or "")
            logger = [CSVLogger(str(out), name="logs", version=""), *([stage_run] if stage_run else [])]
        failed = True
        try:
            module = fit(module, train_set, collate, steps=stage_cfg.steps, batch_size=stage_cfg.batch_size,
                         seed=stage_cfg.seed, trainer_cfg=self.cfg.trainer, work_dir=work, val_set=val_set,
                         logger=logger, checkpoint_every=self.cfg.checkpoint_every)
            failed = False
            return module
        finally:
            if stage_run is not None:
                stage_run.experiment.finish(exit_code=1 if failed else 0)

    def fit(self, module, train_set, stage_cfg, out: Path, work: Path, logger, tok) -> None:
        """A recipe's last step: train ``module`` (no validation set) and save its model to ``out/model``."""
        self.train(module, train_set, None, D.Collator(tok.pad_token_id), stage_cfg, out, work, logger)
        save_pretrained(module.model, tok, out / "model")

    def optimizers(self, stage_cfg):
        """The optimizer and scheduler partials of ``optimizer``/``scheduler`` at the stage's learning rate."""
        return (instantiate(self.cfg.optimizer, lr=stage_cfg.lr), instantiate(self.cfg.scheduler))

    def sft(self, role: str) -> Artifact:
        """``sft_teacher`` (π_ref) or ``sft_student`` (π_sft): SFT on the instruction data."""
        return self._once(("sft", role), lambda: self._sft(role))

    def _sft(self, role: str) -> Artifact:
        stage_cfg = self.cfg.stages[f"sft_{role}"]
        spec = {"data": self.data().key, "model": self._model_spec(role), **self._training_spec(stage_cfg)}
        if role == "teacher" and self.teacher_comparisons():
            spec["comparisons"] = self.teacher_comparisons()
        return self._get(f"sft_{role}", spec, lambda out, work: self._build_sft(role, stage_cfg, out, work))

    def teacher_comparisons(self) -> dict:
        """Extra instruction data the teachers learn for the configured method (its plugin's
        ``teacher_data``: PAD's comparison questions in the toy world, ``ToyTask.comparison_rows``),
        part of the ``sft_teacher`` key. Empty for most methods (and then no teacher key changes)."""
        if self._teacher_data is None:
            from distill.methods.plugin import teacher_data

            self._teacher_data = teacher_data(self.cfg)
        return self._teacher_data

    def _build_sft(self, role, stage_cfg, out, work):
        from distill.methods.sft import SFTModule

        tok = self.tokenizer(role)
        model = build_model(self.family(role), role, tok, self.source, seed=stage_cfg.seed,
                            max_length=self.cfg.stages.max_length * 2, dtype=self.cfg.world.dtype)
        if stage_cfg.steps > 0:
            max_len = self.cfg.stages.max_length
            train = D.encode_sft(tok, self.rows("sft", "sft"), max_len)
            val = D.encode_sft(tok, self.rows("val_sft", "sft"), max_len)
            cmp = self.teacher_comparisons() if role == "teacher" else {}
            if cmp:  # a question quotes two responses: room for them (the model holds 2 · max_length)
                rows = self.task().comparison_rows(cmp["rows"], random.Random(f"comparisons-{cmp['seed']}"))
                train = train + D.encode_sft(tok, rows, 2 * max_len)
                random.Random(stage_cfg.seed).shuffle(train)
            opt, sched = self.optimizers(stage_cfg)
            self.train(SFTModule(model, opt, sched), train, val, D.Collator(tok.pad_token_id), stage_cfg, out, work)
        save_pretrained(model, tok, out / "model")

    def dpo_teacher(self) -> Artifact:
        """π_dpo: DPO of π_ref on the preference pairs (β_T = ``stages.dpo_teacher.beta``)."""
        return self._once(("dpo_teacher",), self._dpo_teacher)

    def _dpo_teacher(self) -> Artifact:
        ref = self.sft("teacher")
        stage_cfg = self.cfg.stages.dpo_teacher
        spec = {"start": ref.key, "data": self.data().key, **self._training_spec(stage_cfg)}
        return self._get("dpo_teacher", spec,
                                       lambda out, work: self.train_dpo(ref.path / "model", stage_cfg, out, work))

    def train_dpo(self, start: Path, stage_cfg, out: Path, work: Path, logger=None) -> None:
        """DPO from the model at ``start`` (also the frozen reference), saved to ``out/model``."""
        from distill.methods.dpo import DPOModule

        model, tok = load_pretrained(start, self.cfg.world.dtype, self.device)
        max_len = self.cfg.stages.max_length
        train, val = (D.encode_pairs(tok, self.rows(n, "pairs"), max_len) for n in ("pairs", "val_pairs"))
        collate = D.Collator(tok.pad_token_id)
        for ds in (train, val):  # a micro-batch at a time: what one device holds in training
            add_reference_logps(model, ds, collate, self.micro_batch(stage_cfg.batch_size))
        model.to("cpu").train()  # the trainer places (or shards) it
        opt, sched = self.optimizers(stage_cfg)
        module = DPOModule(model, opt, sched, beta=stage_cfg.beta)
        self.train(module, train, val, collate, stage_cfg, out, work, logger)
        save_pretrained(model, tok, out / "model")

    def micro_batch(self, batch_size: int) -> int:
        """Items per device per forward pass in training: ``batch_size`` over devices × nodes ×
        accumulation (the same split as :func:`distill.training.fit`)."""
        t = self.cfg.trainer
        devices = t.get("devices", 1)
        devices = len(devices) if isinstance(devices, (list, ListConfig)) else devices if isinstance(devices, int) else 1
        parts = max(1, devices) * int(t.get("num_nodes", 1) or 1) * int(t.get("accumulate_grad_batches", 1) or 1)
        return max(1, int(batch_size) // parts)

    # ------------------------------------------------------------------ the method
    def ref_teacher(self) -> Artifact:
        return self.sft("teacher")

    def distill(self, logger=None, method_cfg=None) -> Artifact:
        """The student of ``method`` (or of ``method_cfg``, e.g. ADPA+'s DCKD stage): trained by the
        method's registered plugin (``distill.methods``) from the artifacts its ``inputs`` declare."""
        from distill.methods.plugin import lookup

        m = method_cfg if method_cfg is not None else self.cfg.method
        plugin = lookup(m)
        stage_cfg = OmegaConf.create({**plain(self.cfg.stages.distill), "seed": self.cfg.seed})
        spec = {"method": plain(m), "student": self.sft("student").key, "data": self.data().key,
                **self._training_spec(stage_cfg), "inputs": self.recipe_inputs(m)}

        def build(out, work):
            plugin.recipe(self, m, plugin.inputs(self, m), stage_cfg, out, work, logger)

        return self._get("distill", spec, build, label=f"distill/{m.name}")

    def recipe_inputs(self, method_cfg) -> list[str]:
        """``stage/key`` of every artifact the method's plugin declares (``inputs``: its teachers,
        samples, caches, another method's student), computed without building anything (part of the
        distill key)."""
        probe = copy.copy(self)
        probe.store, probe._memo = KeyStore(self.store.root), {}  # every input recorded, none built
        visit_recipe(probe, method_cfg)
        return sorted({f"{s}/{k}" for s, k, _ in probe.store.events})

    # ------------------------------------------------------------------ generic artifact requests
    def samples(self, model: Artifact, split: str, sampling: dict) -> Artifact:
        """Responses of ``model`` to the prompts of ``split``, generated once.

        ``sampling``: ``{"greedy": True}`` (one greedy response per prompt), or ``{"n_samples",
        "temperature", "top_p", "seed"}`` and optionally ``"n_keep"`` (the n_samples reduced to n_keep
        by greedy max-min Levenshtein diversity, ``distill.sampling.select_diverse``)."""
        sampling = dict(sampling)
        gen = self._generation_spec(self.cfg.stages.max_new_tokens)
        spec = {"model": model.key, "stage": model.stage, "data": self.data().key, "split": split,
                "sampling": sampling, "generation": gen}
        return self._get("samples", spec, lambda out, work: self._build_samples(model, split, sampling, gen, out))

    def sampling_seed(self) -> int:
        """``stages.sampling_seed``: the seed of every sampled (not greedy) sample set."""
        return int(self.cfg.stages.sampling_seed)

    def _generation_spec(self, max_new_tokens: int) -> dict:
        """Everything a generation reads besides the model and the prompts (the build reads only this)."""
        return {"max_new_tokens": max_new_tokens, "batch_size": self.cfg.eval.batch_size,
                **self.reads("generation", "world.dtype")}

    def _build_samples(self, start, split, sampling, gen, out):
        from distill.sampling import select_diverse

        model, tok = load_pretrained(start.path / "model", gen["world.dtype"], self.device)
        rows = self.rows(split)
        prompts = [r["prompt"] for r in rows]
        kw = dict(max_new_tokens=gen["max_new_tokens"], batch_size=gen["batch_size"],
                  backend=gen["generation"].get("backend") or "hf")
        if sampling.get("greedy"):
            outs = generate(model, tok, prompts, desc=f"sampling ŷ ({split})", **kw)
        else:
            outs = generate(model, tok, prompts, do_sample=True, temperature=sampling["temperature"],
                            top_p=sampling["top_p"], num_return_sequences=sampling["n_samples"],
                            seed=sampling["seed"], desc=f"sampling {sampling['n_samples']}/prompt", **kw)
            if "n_keep" in sampling:
                outs = [[o[i] for i in select_diverse(o, sampling["n_keep"])] for o in outs]
        D.write_jsonl(out / "samples.jsonl", [{"prompt": r["prompt"], "responses": o} for r, o in zip(rows, outs)])

    def encode_samples(self, tok, rows: list[dict]) -> list[list[dict]]:
        trunc = D.Truncation(self.cfg.stages.max_length)
        out = [[D.encode_example(tok, r["prompt"], y, trunc) for y in r["responses"]] for r in rows]
        D._report(trunc, sum(len(r["responses"]) for r in rows))
        return out

    def _cache_spec(self, teachers: list[Artifact], source: dict, k: int) -> dict:
        from distill.cache import LAYOUT, template_fingerprint

        return {"teachers": [t.key for t in teachers], "source": source, "k": k, "layout": LAYOUT,
                "template": template_fingerprint(self.tokenizer("student")), **self._scoring_spec()}

    def _scoring_spec(self) -> dict:
        """What a teacher pass over fixed sequences reads (caches, sequence scores)."""
        return self.reads("stages.max_length", "eval.batch_size", "world.dtype")

    def topk_cache(self, teachers: list[Artifact], source: Artifact | str, k: int) -> Artifact:
        """``teachers[0]``'s top-k log-probabilities and the log of its remaining mass at every response
        token of ``source``, and, with a second teacher, that teacher's log-probabilities at the same
        ids (``ref_logps``), read with the student's tokenizer (``distill.cache``).

        ``source``: a split of preference pairs (``"pairs"``: rows 2i, 2i+1 = pair i's chosen and
        rejected responses) or a ``samples`` artifact (one row per response, prompt by prompt)."""
        if len(teachers) not in (1, 2):
            raise ValueError(f"a top-k cache reads one teacher and at most one reference, got {len(teachers)}")
        src = {"samples": source.key} if isinstance(source, Artifact) else {"data": self.data().key, "split": source}
        spec = self._cache_spec(teachers, src, k)

        def build(out, work):
            tok = self.tokenizer("student")
            if isinstance(source, Artifact):
                rows = D.read_jsonl(source.path / "samples.jsonl")
                seqs = [{"seqs": [s]} for group in self.encode_samples(tok, rows) for s in group]
            else:
                pairs = D.encode_pairs(tok, self.rows(source, "pairs"), self.cfg.stages.max_length)
                seqs = [{"seqs": [s]} for it in pairs for s in it["seqs"]]
            self._build_cache(out, teachers[0], teachers[1] if len(teachers) > 1 else None, seqs, k)

        return self._get("teacher_cache", spec, build)

    def _build_cache(self, out, teacher: Artifact, ref: Artifact | None, seqs, k: int) -> None:
        from distill.cache import build_topk_cache

        t_model, t_tok = load_pretrained(teacher.path / "model", self.cfg.world.dtype, self.device)
        r_model = load_pretrained(ref.path / "model", self.cfg.world.dtype, self.device)[0] if ref else None
        build_topk_cache(out, t_model, seqs, D.Collator(t_tok.pad_token_id), k=k,
                         batch_size=self.cfg.eval.batch_size, reference=r_model)

    def sequence_scores(self, scorer: Artifact, samples: Artifact) -> Artifact:
        """r = (1/|y|) log π(y|x) of every sample under the model ``scorer``, with its own tokenizer
        and chat template (only text crosses between models). Stage ``pad_scores`` (the name its
        artifacts were first stored under), file ``scores.jsonl``: one ``{"scores": [...]}`` per prompt."""
        spec = {"samples": samples.key, "teacher": scorer.key, **self._scoring_spec()}

        def build(out, work):
            model, tok = load_pretrained(scorer.path / "model", self.cfg.world.dtype, self.device)
            rows = D.read_jsonl(samples.path / "samples.jsonl")
            seqs = self.encode_samples(tok, rows)
            flat = [{"seqs": [s]} for group in seqs for s in group]
            scores = length_normalised_logps(model, flat, D.Collator(tok.pad_token_id), self.cfg.eval.batch_size)
            it = iter(scores)
            D.write_jsonl(out / "scores.jsonl", [{"scores": [next(it) for _ in group]} for group in seqs])

        return self._get("pad_scores", spec, build)

    def pairwise_choices(self, judge: Artifact, samples: Artifact) -> Artifact:
        """Each sample's mean probability p̄ of being named the better one when the model ``judge`` compares
        it with each other sample of its prompt, both orders (``distill.mcq``), in the toy world's
        comparison format or in English (full world). Stage ``pad_mcq``, file ``mcq.jsonl``."""
        style = "toy" if self.source == "toy" else "natural"
        limit = 2 * self.cfg.stages.max_length
        spec = {"samples": samples.key, "teacher": judge.key, "format": style, "max_length": limit,
                **self.reads("eval.batch_size", "world.dtype")}

        def build(out, work):
            from distill.mcq import mean_selection_probabilities

            model, tok = load_pretrained(judge.path / "model", self.cfg.world.dtype, self.device)
            rows = D.read_jsonl(samples.path / "samples.jsonl")
            p_bar = mean_selection_probabilities(model, tok, rows, style=style, batch_size=self.cfg.eval.batch_size,
                                                 max_length=limit)
            D.write_jsonl(out / "mcq.jsonl", [{"p_bar": p} for p in p_bar])

        return self._get("pad_mcq", spec, build)

    # ------------------------------------------------------------------ generation + oracle
    def generation_backend(self) -> str:
        """``generation.backend``: ``hf`` (default) or ``vllm`` (see :mod:`distill.generation`)."""
        return OmegaConf.select(self.cfg, "generation.backend", default="hf") or "hf"

    def generations(self, model_art: Artifact, split: str = "eval") -> Artifact:
        ec = self.cfg.eval
        gen = self._generation_spec(ec.max_new_tokens)
        spec = {"model": model_art.key, "stage": model_art.stage, "data": self.data().key, "split": split,
                "n": ec.n_prompts, "generation": gen}
        return self._get("generate", spec, lambda out, work: self._build_gen(model_art, split, spec["n"], gen, out))

    def _build_gen(self, model_art, split, n, gen, out):
        model, tok = load_pretrained(model_art.path / "model", gen["world.dtype"], self.device)
        rows = self.rows(split, "prompts")[:n]
        outs = generate(model, tok, [r["prompt"] for r in rows], max_new_tokens=gen["max_new_tokens"],
                        batch_size=gen["batch_size"], desc=f"generating ({model_art.stage})",
                        backend=gen["generation"].get("backend") or "hf")
        D.write_jsonl(out / "generations.jsonl", [{**r, "response": o[0]} for r, o in zip(rows, outs)])


def visit_recipe(pipe: Pipeline, m: DictConfig, nested: bool = False) -> None:
    """Ask ``pipe`` for every artifact the method ``m`` reads, in build order: its ``teachers``, the
    SFT student, then what its plugin's ``inputs`` declare (with a :class:`~distill.artifacts.KeyStore`,
    this computes their keys and builds nothing). ``nested``: first visit what the method configs its
    plugin trains first read themselves (ADPA+'s DCKD stage; the dry run lists every artifact)."""
    from distill.methods.plugin import lookup

    for name in m.get("teachers", []):
        getattr(pipe, name)()
    pipe.sft("student")
    plugin = lookup(m)
    if nested:
        for sub in plugin.nested(m).values():
            visit_recipe(pipe, sub, nested=True)
    plugin.inputs(pipe, m)


def stage_keys(cfg: DictConfig, pipeline_cls=None) -> dict[str, str]:
    """The key of every artifact ``python run.py`` reads for ``cfg``, by role, computed without
    building anything: ``data``, ``sft_teacher``, ..., ``distill``, the inputs the method declares
    (``samples`` / ``teacher_cache`` / ``pad_scores`` / ..., and ``distill:<key>`` for the student of
    a nested method config, ADPA+'s ``distill:dckd``), and ``generate:<stage>`` for the four evaluated
    models."""
    from distill.methods.plugin import lookup

    pipe = (pipeline_cls or Pipeline)(cfg, KeyStore(cfg.paths.artifacts))
    keys = {"data": pipe.data().key, "sft_teacher": pipe.sft("teacher").key, "sft_student": pipe.sft("student").key,
            "dpo_teacher": pipe.dpo_teacher().key}
    n = len(pipe.store.events)
    visit_recipe(pipe, cfg.method)
    for stage, key, _ in pipe.store.events[n:]:
        if stage not in keys and stage != "distill":
            keys[stage] = key
    for name, sub in lookup(cfg.method).nested(cfg.method).items():
        keys[f"distill:{name}"] = pipe.distill(method_cfg=sub).key
    keys["distill"] = pipe.distill().key
    for role in ("sft_teacher", "dpo_teacher", "sft_student", "distill"):
        art = Artifact(role, keys[role], pipe.store.root / role / keys[role], True)
        keys[f"generate:{role}"] = pipe.generations(art).key
    return keys


@torch.no_grad()
def add_reference_logps(model, encoded_pairs: list[dict], collate, batch_size: int) -> None:
    """Attach the frozen model's ``ref_chosen_logps``/``ref_rejected_logps`` to each pair (once)."""
    model.eval()
    with progress.Tracker("reference log-probs", total=len(encoded_pairs), unit="pairs") as bar:
        for i in range(0, len(encoded_pairs), batch_size):
            chunk = encoded_pairs[i:i + batch_size]
            batch = D.to_device(collate(chunk), next(model.parameters()).device)
            # the LM head at response positions only (the sum over them is the same as over every position)
            logits, labels, mask, _ = response_logits(model, batch["input_ids"], batch["attention_mask"],
                                                      batch["labels"])
            logps = sequence_logps(logits, labels, mask)
            b = len(chunk)
            for j, ex in enumerate(chunk):
                ex["ref_chosen_logps"], ex["ref_rejected_logps"] = float(logps[j]), float(logps[b + j])
            bar.advance(b)


@torch.no_grad()
def length_normalised_logps(model, items: list[dict], collate, batch_size: int) -> list[float]:
    """r_π(x, y) = (1/|y|) log π(y|x) for each one-sequence item (PAD's intrinsic reward)."""
    from distill.losses.pad import intrinsic_reward

    model.eval()
    out: list[float] = []
    with progress.Tracker("teacher scores", total=len(items), unit="samples") as bar:
        for i in range(0, len(items), batch_size):
            batch = D.to_device(collate(items[i:i + batch_size]), next(model.parameters()).device)
            logits, labels, mask, _ = response_logits(model, batch["input_ids"], batch["attention_mask"],
                                                      batch["labels"])  # the LM head at response positions only
            out.extend(intrinsic_reward(sequence_logps(logits, labels, mask), mask.sum(-1)).tolist())
            bar.advance(len(items[i:i + batch_size]))
    return out
