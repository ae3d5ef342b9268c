"""Our DPO and ADPA steps against TRL's DPOTrainer and GKDTrainer, at the realistic size of
``bench/run.py`` (f): identical model, rows and batch, interleaved repetitions, min/median/max.

    uv pip install --find-links /opt/wheels -e ".[bench]"   # trl==1.16.0
    python bench/trl_compare.py [--reps 5] [--threads 1] [--teacher-dtype float32] [--out bench/trl_compare.md]

Student: the gemma family's architecture (Gemma-2, final soft-capping), 4 layers, width 256,
vocabulary 32,000 (``bench/run.py``'s ``realistic_model``), float32 on both sides; teacher (π_dpo)
and reference (π_ref): the same architecture at width 512, in ``--teacher-dtype`` on both sides
(float32, or bfloat16 as ``world=full`` loads every model: ``conf/world/full.yaml``). Each step reads
2 prompts of 128 tokens with 128-token responses; ``--threads`` torch threads (torch's own default
on a CPU is one a physical core); the same optimizer on both sides: torch's fused AdamW (what our
modules build on the CPU and what the HF Trainer under TRL builds by default, ``adamw_torch_fused``).

What is timed, per repetition, every entry once in alternating order:
  * ``ours dpo``: ``DPOModule.model_step`` + backward + AdamW step on 2 pairs (4 rows), reference
    log-probabilities precomputed (as the pipeline does once per pair);
  * ``trl dpo``: ``DPOTrainer.training_step`` (its loss with its fused LM head, and the backward)
    + the same AdamW step on the same 2 pairs, collated by TRL's own ``DataCollatorForPreference``,
    reference log-probabilities precomputed too (``precompute_ref_log_probs=True``);
  * ``ours adpa``: ``ADPAModule.model_step`` + backward + AdamW on the 2 prompts' chosen answer and ŷ
    (4 rows), plus ``adpa cache``: building the teacher cache of those 2 ŷ rows
    (``distill.cache.build_topk_cache``: π_dpo's top-50 and π_ref's log-probs, written to disk), plus
    ``adpa samples``: generating the 2 ŷ (greedy, 128 new tokens, the student's ``generate``), which
    the pipeline does once per prompt before training;
  * ``trl gkd``: ``GKDTrainer.training_step`` + AdamW on the 2 prompts with their chosen answers,
    off-policy (the teacher's forward on every step) and on-policy (first the student samples 128
    new tokens, as TRL does on a fraction λ of its steps); at GKD's default λ = 0.5 a step costs
    0.5 · off-policy + 0.5 · on-policy, computed per repetition.

Not timed on either side: data loading and collation, logging, checkpoints. TRL's configs default to
``gradient_checkpointing=True`` (a second forward in every backward and, for GKD's on-policy samples,
generation without a KV cache); it is turned off here, as our steps use neither.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import functools
import importlib.util
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
B = importlib.util.module_from_spec(_spec)  # bench/run.py (configures the allocator before torch allocates)
_spec.loader.exec_module(B)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from distill import data as D  # noqa: E402

PROMPT, RESPONSE, PROMPTS, K = 128, 128, 2, 50


def n_params(model) -> int:
    """Parameters that cost FLOPs per token: all but the input embedding, the LM head included (a tied
    head is the embedding matrix, counted once as the head)."""
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p is not emb) + (head.numel() if head is emb else 0)


def rows(rng, vocab: int) -> list[dict]:
    """2 prompts, each with a chosen answer, a rejected answer (the DPO pair) and ŷ (ADPA): token ids."""
    out = []
    for _ in range(PROMPTS):
        p = rng.integers(3, vocab, PROMPT).tolist()
        out.append({"prompt": p, **{k: rng.integers(3, vocab, RESPONSE).tolist() for k in ("chosen", "rejected", "hat")}})
    return out


def seq(prompt: list[int], response: list[int]) -> dict:
    return {"input_ids": prompt + response, "labels": [D.IGNORE] * len(prompt) + response}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="timed repetitions (after one warm-up)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--family", default="gemma")
    p.add_argument("--teacher-hidden", type=int, default=512)
    p.add_argument("--teacher-dtype", choices=("float32", "bfloat16"), default="float32",
                   help="dtype of the teacher and reference on both sides (world=full loads them in bfloat16)")
    p.add_argument("--out", default=str(ROOT / "bench" / "trl_compare.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    import datasets
    import trl
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer
    from trl.experimental.gkd import GKDConfig, GKDTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from distill.cache import TopKCache, build_topk_cache
    from distill.methods.adpa import ADPAModule
    from distill.methods.dpo import DPOModule
    from distill.stages import add_reference_logps
    from toyworld.task import ToyTask

    datasets.disable_progress_bars()
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    cfg = B.family_cfg(args.family)
    fc = cfg.model
    ns = argparse.Namespace(**B.REALISTIC)
    student0 = B.realistic_model(fc, ns)
    teacher = B.realistic_model(fc, argparse.Namespace(**{**vars(ns), "real_hidden": args.teacher_hidden})).eval()
    reference = copy.deepcopy(teacher).eval()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(3)
        for q in reference.parameters():
            q.add_(torch.randn(q.shape, generator=gen) * 0.01)
    teacher, reference = (m.to(getattr(torch, args.teacher_dtype)) for m in (teacher, reference))
    V = ns.real_vocab
    data = rows(np.random.default_rng(0), V)
    collate = D.Collator(0)
    opt_kw = dict(lr=1e-5, betas=(0.9, 0.95), weight_decay=0.0)

    def adamw(model):
        """The same optimizer on both sides: torch's fused AdamW, which our modules get on the CPU
        (``build_optimizer``) and the HF Trainer under TRL uses by default (``optim="adamw_torch_fused"``)."""
        from distill.methods.base import build_optimizer

        return build_optimizer(functools.partial(torch.optim.AdamW, **opt_kw),
                               [q for q in model.parameters() if q.requires_grad])
    work = Path(tempfile.mkdtemp(prefix="trl-compare-"))
    # a tokenizer only for what the trainers read from it (pad/eos ids, a chat template); the data are ids
    tok = B._toy_tokenizer(fc, ToyTask(**dict(cfg.data.task)))

    def hf_args(cls, name, **kw):
        return cls(output_dir=str(work / name), per_device_train_batch_size=PROMPTS, max_steps=1, learning_rate=1e-5,
                   lr_scheduler_type="constant", adam_beta1=0.9, adam_beta2=0.95, weight_decay=0.0,
                   max_grad_norm=None, logging_steps=10**6, save_strategy="no", report_to="none", disable_tqdm=True,
                   use_cpu=True, dataloader_num_workers=0, seed=0, bf16=False, fp16=False,
                   gradient_checkpointing=False, **kw)  # TRL's default True recomputes the forward and, for GKD,
    # generates without a KV cache; our steps do neither, so the same computation is compared

    # ---------------------------------------------------------------- DPO, ours
    pairs = [{"seqs": [seq(r["prompt"], r["chosen"]), seq(r["prompt"], r["rejected"])]} for r in data]
    ref_model = copy.deepcopy(student0)
    add_reference_logps(ref_model, pairs, collate, PROMPTS)
    del ref_model
    ours_dpo = DPOModule(copy.deepcopy(student0).train(), None, beta=0.1)
    ours_dpo_opt = adamw(ours_dpo.model)
    ours_dpo_batch = collate(pairs)

    # ---------------------------------------------------------------- DPO, TRL
    text = Dataset.from_list([{"prompt": "a", "chosen": "b", "rejected": "c"}] * PROMPTS)
    trl_dpo = DPOTrainer(model=copy.deepcopy(student0).train(),
                         args=hf_args(DPOConfig, "dpo", beta=0.1, precompute_ref_log_probs=True,
                                      max_length=PROMPT + RESPONSE),
                         train_dataset=text, processing_class=tok)
    trl_dpo_opt = trl_dpo.optimizer = adamw(trl_dpo.model)
    trl_dpo_batch = DataCollatorForPreference(pad_token_id=0)(
        [{"prompt_ids": r["prompt"], "chosen_ids": r["chosen"], "rejected_ids": r["rejected"],
          "ref_chosen_logps": it["ref_chosen_logps"], "ref_rejected_logps": it["ref_rejected_logps"]}
         for r, it in zip(data, pairs)])

    # ---------------------------------------------------------------- ADPA, ours
    hats = [{"seqs": [seq(r["prompt"], r["hat"])]} for r in data]
    ours_adpa = ADPAModule(copy.deepcopy(student0).train(), None, gamma=1.0)
    ours_adpa_opt = adamw(ours_adpa.model)
    prompts = torch.tensor([r["prompt"] for r in data])

    def adpa_cache():
        out = work / f"cache-{time.perf_counter_ns()}"
        out.mkdir()
        build_topk_cache(out, teacher, hats, collate, k=K, batch_size=PROMPTS, reference=reference)
        return out

    def adpa_batch(cache_dir):
        cache = TopKCache(cache_dir)
        return collate([{"seqs": [seq(r["prompt"], r["chosen"]),
                                  {**seq(r["prompt"], r["hat"]), "t_ids": cache[i]["ids"], "t_logps": cache[i]["logps"],
                                   "t_ref_logps": cache[i]["ref_logps"]}]} for i, r in enumerate(data)])

    ours_adpa_batch = adpa_batch(adpa_cache())

    # ---------------------------------------------------------------- GKD, TRL
    msgs = Dataset.from_list([{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}]
                             * PROMPTS)
    trl_gkd = GKDTrainer(model=copy.deepcopy(student0).train(), teacher_model=teacher,
                         args=hf_args(GKDConfig, "gkd", lmbda=0.5, beta=0.5, max_new_tokens=RESPONSE,
                                      max_length=PROMPT + RESPONSE),
                         train_dataset=msgs, processing_class=tok)
    trl_gkd_opt = trl_gkd.optimizer = adamw(trl_gkd.model)
    gkd_seqs = [seq(r["prompt"], r["chosen"]) for r in data]
    gkd_batch = {"input_ids": torch.tensor([s["input_ids"] for s in gkd_seqs]),
                 "attention_mask": torch.ones(PROMPTS, PROMPT + RESPONSE, dtype=torch.long),
                 "labels": torch.tensor([s["labels"] for s in gkd_seqs]),
                 "prompts": prompts, "prompt_attention_mask": torch.ones_like(prompts)}
    # the student samples exactly RESPONSE new tokens (no early stop), as ŷ has RESPONSE tokens
    trl_gkd.generation_config.eos_token_id = None
    trl_gkd.generation_config.min_new_tokens = RESPONSE

    def ours(module, opt, batch):
        loss, _ = module.model_step(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def theirs(trainer, opt, batch, lmbda=None):
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train's loop, which is not run here
        if lmbda is not None:
            trainer.lmbda = lmbda  # 1.0: this step samples on-policy; 0.0: it does not
        trainer.training_step(trainer.model, {k: v.clone() for k, v in batch.items()})
        opt.step()
        opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def samples():
        ours_adpa.model.eval()
        ours_adpa.model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                                 max_new_tokens=RESPONSE, min_new_tokens=RESPONSE, pad_token_id=0)
        ours_adpa.model.train()

    entries = {
        "ours dpo": lambda: ours(ours_dpo, ours_dpo_opt, ours_dpo_batch),
        "trl dpo": lambda: theirs(trl_dpo, trl_dpo_opt, trl_dpo_batch),
        "ours adpa": lambda: ours(ours_adpa, ours_adpa_opt, ours_adpa_batch),
        "adpa cache": lambda: shutil.rmtree(adpa_cache()),
        "adpa samples": samples,
        "trl gkd off-policy": lambda: theirs(trl_gkd, trl_gkd_opt, gkd_batch, 0.0),
        "trl gkd on-policy": lambda: theirs(trl_gkd, trl_gkd_opt, gkd_batch, 1.0),
    }
    names = list(entries)
    times = {n: [] for n in names}
    for rep in range(1 + args.reps):
        order = names if rep % 2 == 0 else names[::-1]
        for n in order:
            t0 = time.perf_counter()
            entries[n]()
            if rep:
                times[n].append(time.perf_counter() - t0)
        print(f"repetition {rep + 1}/{1 + args.reps} done", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    t = {n: np.array(v) for n, v in times.items()}
    gkd05 = 0.5 * t["trl gkd off-policy"] + 0.5 * t["trl gkd on-policy"]
    adpa_c = t["ours adpa"] + t["adpa cache"]
    adpa_cs = adpa_c + t["adpa samples"]
    ratios = {
        "TRL DPOTrainer / our DPO (time per step)": t["trl dpo"] / t["ours dpo"],
        "TRL GKD λ=0.5 / our ADPA + cache": gkd05 / adpa_c,
        "TRL GKD λ=0.5 / our ADPA + cache + ŷ samples": gkd05 / adpa_cs,
        "TRL GKD λ=0 (off-policy) / our ADPA + cache": t["trl gkd off-policy"] / adpa_c,
    }
    ns_, nt = n_params(student0), n_params(teacher)
    bound = 0.5 + nt / (6 * ns_)
    md = render(args, trl.__version__, load0, os.getloadavg(), t, gkd05, adpa_c, adpa_cs, ratios, ns_, nt, bound,
                time.perf_counter() - t_start)
    Path(args.out).write_text(md)
    print(md)


def _mmm(x, fmt=".3f") -> str:
    x = np.sort(np.asarray(x))
    return " / ".join(f"{v:{fmt}}" for v in (x[0], float(np.median(x)), x[-1]))


def render(args, trl_version, load0, load1, t, gkd05, adpa_c, adpa_cs, ratios, ns_, nt, bound, seconds) -> str:
    info = B.device_info()
    lines = [
        "# Our DPO and ADPA steps against TRL",
        "",
        f"Command: `python bench/trl_compare.py --reps {args.reps} --threads {args.threads} "
        f"--teacher-dtype {args.teacher_dtype}` ({seconds:.0f} s)",
        "",
        f"- date: {dt.datetime.now():%Y-%m-%d %H:%M}",
        f"- device: {info['cpu']}, {info['cores']} cores (torch threads {torch.get_num_threads()}), GPU: none"
        if not torch.cuda.is_available() else f"- device: {torch.cuda.get_device_name(0)}",
        f"- load average at the start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; at the end: "
        f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}",
        f"- torch {torch.__version__}, transformers {__import__('transformers').__version__}, TRL {trl_version}, "
        f"Python {platform.python_version()}",
        f"- student: Gemma-2 architecture, 4 layers, width 256, vocabulary 32,000 ({ns_ / 1e6:.1f} M parameters "
        f"with the LM head, float32); teacher π_dpo and reference π_ref on both sides: width {args.teacher_hidden} "
        f"({nt / 1e6:.1f} M), {args.teacher_dtype}",
        f"- each step: {PROMPTS} prompts × ({PROMPT} prompt + {RESPONSE} response tokens); DPO: 2 pairs = 4 rows; "
        f"ADPA: chosen + ŷ = 4 rows, top-{K} cache; GKD: 2 rows (prompt + chosen), its teacher's forward on the "
        f"same rows, on-policy: {RESPONSE} sampled tokens first",
        f"- 1 warm-up + {args.reps} timed repetitions, every entry once per repetition in alternating order; "
        "figures are min / median / max",
        "",
        "| entry | s/step (min / median / max) |",
        "|---|---|",
    ]
    for n, v in t.items():
        lines.append(f"| {n} | {_mmm(v)} |")
    lines += [f"| trl gkd at λ = 0.5 (0.5 · off + 0.5 · on, per repetition) | {_mmm(gkd05)} |",
              f"| our adpa + cache | {_mmm(adpa_c)} |",
              f"| our adpa + cache + ŷ samples | {_mmm(adpa_cs)} |", "",
              "| ratio (TRL time / ours: above 1 means ours is faster) | min / median / max |", "|---|---|"]
    for n, v in ratios.items():
        lines.append(f"| {n} | {_mmm(v, '.2f')} |")
    lines += ["", f"FLOP bound at λ = 0 (GKD without sampling): a GKD step costs 6·N_student + 2·N_teacher per "
                  f"token, an ADPA step 2 × 6·N_student (chosen answer and ŷ), so TRL GKD time / our ADPA time ≤ 0.5 + "
                  f"N_teacher / (6·N_student) = 0.5 + {nt / 1e6:.1f} / (6 · {ns_ / 1e6:.1f}) = {bound:.2f} (cache "
                  "not counted; with the cache, which adds 2·(N_teacher + N_reference) per ŷ token, lower still)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
