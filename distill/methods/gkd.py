"""On-policy GKD (Agarwal et al., ICLR 2024; TRL's ``GKDTrainer``): the student matches the aligned
teacher's token distributions under the generalised JSD, on the data's responses or, with
probability λ per batch, on responses it samples itself from its current weights.

Batch: B sequences (prompt + response; the pairs' chosen responses y_w). In a training step, with
probability λ (``lmbda``) the responses are replaced by the current student's samples (temperature
``temperature``, no top-k/top-p, at most ``max_new_tokens``), generated on the fly from the batch's
prompts. The teacher, π_dpo, is a frozen model held by the module and scores every batch ONLINE
(no cache: the sampled responses do not exist before the step). Teacher and student compare
distributions id by id, so they must share vocabulary and chat template (as for DCKD and ADPA).
"""
from __future__ import annotations

import copy
import random
import warnings
from dataclasses import dataclass

import torch

from distill import data as D
from distill.data import IGNORE
from distill.losses.gkd import generalized_jsd
from distill.methods.base import MethodModule, response_logits
from distill.methods.plugin import Method, hp, load_student


class GKDModule(MethodModule):
    def __init__(self, model, optimizer, scheduler=None, teacher=None, beta: float = 0.5, lmbda: float = 0.5,
                 temperature: float = 0.9, loss_temperature: float = 1.0, max_new_tokens: int = 64,
                 pad_id: int = 0, eos_id: int | None = None, seed: int = 0):
        with warnings.catch_warnings():  # the base class records init arguments; the teacher is dropped below
            warnings.filterwarnings("ignore", message="Attribute 'teacher' is an instance of `nn.Module`")
            super().__init__(model, optimizer, scheduler)
        for key in ("teacher",):  # a model, not a hyperparameter
            self.hparams.pop(key, None)
            getattr(self, "_hparams_initial", {}).pop(key, None)
        if teacher is None:
            raise ValueError("GKDModule needs the teacher model (it scores every batch online)")
        if not 0 <= beta <= 1:
            raise ValueError(f"method.beta must be in [0, 1] (GKD's JSD interpolation), got {beta}")
        if not 0 <= lmbda <= 1:
            raise ValueError(f"method.lmbda must be in [0, 1] (GKD's share of on-policy batches), got {lmbda}")
        if not (temperature > 0 and loss_temperature > 0):
            raise ValueError(f"method.temperature and method.loss_temperature must be > 0, got {temperature}, "
                             f"{loss_temperature}")
        self.teacher = teacher.requires_grad_(False).eval()
        self.beta, self.lmbda, self.temperature, self.loss_temperature = beta, lmbda, temperature, loss_temperature
        self.max_new_tokens, self.pad_id, self.eos_id, self.seed = int(max_new_tokens), pad_id, eos_id, seed

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # frozen, always in inference mode
        return self

    def on_policy_step(self) -> bool:
        """This step's coin, fixed by (seed, global step): on-policy with probability λ (a resumed run
        and every data-parallel rank draw the same)."""
        return random.Random(f"gkd:{self.seed}:{self.global_step}").random() < self.lmbda

    @torch.no_grad()
    def student_samples(self, batch: dict) -> dict:
        """The batch with its responses replaced by the current student's samples for its prompts."""
        ids, labels = batch["input_ids"], batch["labels"]
        prompts = []
        for i in range(ids.shape[0]):
            resp = (labels[i] != IGNORE).nonzero()
            n = int(resp[0]) if len(resp) else int(batch["attention_mask"][i].sum())
            prompts.append(ids[i, :n].tolist())
        width = max(len(p) for p in prompts)
        left = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=ids.device)
        attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=ids.device)
        was_training = self.model.training
        self.model.eval()
        devices = [ids.device] if ids.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(hash((self.seed, self.global_step)) % (2 ** 31))
                out = self.model.generate(input_ids=left, attention_mask=attn, do_sample=True,
                                          temperature=self.temperature, top_k=0, top_p=1.0,
                                          max_new_tokens=self.max_new_tokens, pad_token_id=self.pad_id,
                                          eos_token_id=self.eos_id)
        finally:
            self.model.train(was_training)
        items = []
        for p, row in zip(prompts, out[:, width:].tolist()):
            new = []
            for t in row:
                if t == self.pad_id and self.pad_id != self.eos_id:
                    break
                new.append(t)
                if t == self.eos_id:
                    break
            new = new or [self.eos_id if self.eos_id is not None else row[0]]
            items.append({"seqs": [{"input_ids": p + new, "labels": [IGNORE] * len(p) + new}]})
        return D.to_device(D.Collator(self.pad_id)(items), ids.device)

    def model_step(self, batch):
        on_policy = self.training and self.on_policy_step()
        if on_policy:
            batch = self.student_samples(batch)
        logits, _, mask, _ = response_logits(self.model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        with torch.no_grad():
            t_logits, _, _, _ = response_logits(self.teacher, batch["input_ids"], batch["attention_mask"],
                                                batch["labels"])
        loss, metrics = generalized_jsd(logits, t_logits, mask, self.beta, self.loss_temperature)
        metrics["on_policy"] = torch.tensor(float(on_policy))
        return loss, metrics


# ----------------------------------------------------------------------------- the plugin
@dataclass
class GKDConfig:
    """``conf/method/gkd.yaml``: generalised JSD between π_dpo and the student, on-policy with
    probability λ. Defaults: TRL's ``GKDConfig`` (β 0.5, λ 0.5, temperature 0.9; its loss at τ = 1)."""

    # β: interpolation of the generalised JSD, [0, 1]: 0 = forward KL(P_T‖P_S), 1 = reverse KL(P_S‖P_T)
    beta: float = hp(0.5, "β", "GKD JSD interpolation", lo=0.0, hi=1.0,
                     why="GKD's JSD interpolation: 0 forward KL, 1 reverse KL")
    # λ: probability that a batch uses the student's own samples instead of the data's responses
    lmbda: float = hp(0.5, "λ", "GKD on-policy share", lo=0.0, hi=1.0,
                      why="GKD's share of batches with student-sampled responses")
    # sampling temperature of the on-policy responses (TRL: 0.9)
    temperature: float = hp(0.9, "T", "GKD sampling temperature", lo=0.0, lo_open=True, why="sampling temperature")
    # softmax temperature τ of both distributions in the divergence (TRL's loss default: 1)
    loss_temperature: float = hp(1.0, "τ", "GKD divergence temperature", lo=0.0, lo_open=True,
                                 why="softmax temperature of the divergence")
    # longest sampled response (TRL: 128; here stages.max_new_tokens, as the other methods' samples)
    max_new_tokens: int = hp(128, "max_new", "GKD sampled response length", unit="tokens", lo=1, kind="integer",
                             why="tokens sampled per on-policy response")


class GKD(Method):
    names = ("gkd",)
    labels = {"gkd": "On-policy GKD"}
    order = 70
    config = GKDConfig
    token_level = True
    paper = "Agarwal et al., ICLR 2024; TRL GKDTrainer"

    def inputs(self, pipe, m):
        """The online teacher π_dpo (a model, no cache)."""
        return {"teacher": pipe.dpo_teacher()}

    def plan(self, m):
        lam = float(m.get("lmbda", 0.5))
        return {"seqs": 1, "rows": "pairs", "reference_pass": False,
                "online": (("forward", "teacher", 1), ("generate", "student", 1, lam))}

    def recipe(self, pipe, m, inputs, stage_cfg, out, work, logger=None):
        """GKD of the SFT student on the pairs' chosen responses, π_dpo loaded here and scoring online."""
        from distill.models import load_pretrained

        model, tok = load_student(pipe, pipe.sft("student"), m.name, same_vocabulary=True)
        teacher, _ = load_pretrained(inputs["teacher"].path / "model", pipe.cfg.world.dtype)
        train = [{"seqs": [it["seqs"][0]]}
                 for it in D.encode_pairs(tok, pipe.rows("pairs", "pairs"), pipe.cfg.stages.max_length)]
        opt, sched = pipe.optimizers(stage_cfg)
        module = GKDModule(model, opt, sched, teacher=teacher, beta=m.beta, lmbda=m.lmbda, temperature=m.temperature,
                           loss_temperature=m.loss_temperature, max_new_tokens=m.max_new_tokens,
                           pad_id=tok.pad_token_id, eos_id=tok.eos_token_id, seed=int(stage_cfg.seed))
        pipe.fit(module, train, stage_cfg, out, work, logger, tok)

    def example_items(self, b, prompt, response, vocab, k, n_keep, rng, gen):
        from distill.methods.examples import seq

        return [{"seqs": [seq(rng, prompt, response, vocab)]} for _ in range(b)]

    def bench_module(self, model, optimizer, name=None):
        """Teacher: a copy of the student (same vocabulary); λ as configured, so about half the steps
        sample (a step's coin is fixed by the global step, 0 outside a trainer: every step alike)."""
        cfg = model.config
        return GKDModule(model, optimizer, teacher=copy.deepcopy(model), beta=GKDConfig.beta, lmbda=GKDConfig.lmbda,
                         temperature=GKDConfig.temperature, max_new_tokens=32, pad_id=cfg.pad_token_id or 0,
                         eos_id=cfg.eos_token_id)


METHOD = GKD()
