"""The training step as the code stood before the speed work, in a process of its own, for the
realistic-size table of ``bench/run.py`` (f). Started by ``bench/run.py``, not by hand.

*Old* is commit 709a712 (``OLD_COMMIT`` in ``bench/run.py``), the last one before 4de65ff put the LM
head at response positions. Its ``distill`` package is extracted with ``git archive`` into a
temporary folder and put first on ``sys.path`` here, so this process runs that code and not the
working tree's:

* every method's ``model_step`` calls ``shifted_logits``: the model's full forward, the LM head and
  Gemma-2's soft-capping at every position, prompt included, then ``logits[:, :-1]``;
* its losses: ``token_logps`` (centred logits, gather, logsumexp), DCKD's NLL and KL each with
  their own pass over the vocabulary and the remaining mass by ``log_mass_outside``;
* glibc's default allocator (``distill/allocator.py`` did not exist; ``DISTILL_MALLOC=default`` is
  set as well), so large buffers are mapped and faulted in afresh at every step;
* the optimizer as ``conf/config.yaml`` configured it then: ``torch.optim.AdamW`` with
  ``weight_decay: 0.0, betas: [0.9, 0.95]`` and no ``fused``/``foreach`` (torch's per-tensor loop on
  the CPU), the bench's learning rate;
* the same torch, transformers, thread count, model weights (saved by the parent, loaded here)
  and batches (the parent's tensors) as the new code's steps.

Protocol: one line per step on stdin, ``<method> <method|sft>``; one JSON line back per step:
``[wall s, user s, sys s, minor faults]`` of that step in this process. ``quit`` ends it. Only one of
the two processes computes at a time (the parent waits for the answer).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tree", required=True, help="folder holding the old distill package")
    p.add_argument("--model", required=True, help="save_pretrained folder of the bench's model")
    p.add_argument("--attn", default="eager")
    p.add_argument("--batches", required=True, help="torch.save'd {method: batch}")
    p.add_argument("--hparams", required=True, help="JSON {method: {hyperparameter: value}}")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    sys.path.insert(0, args.tree)
    import torch

    torch.set_num_threads(args.threads)
    import distill

    if not os.path.realpath(distill.__file__).startswith(os.path.realpath(args.tree)):
        raise SystemExit(f"old_steps: imported distill from {distill.__file__}, not from {args.tree}")
    from transformers import AutoModelForCausalLM

    from distill.losses import pad as old_pad
    from distill.methods.adpa import ADPAModule
    from distill.methods.dckd import DCKDModule
    from distill.methods.dpo import DPOModule
    from distill.methods.pad import PADModule
    from distill.methods.sft import SFTModule

    model = AutoModelForCausalLM.from_pretrained(args.model, attn_implementation=args.attn).train()
    factory = functools.partial(torch.optim.AdamW, lr=args.lr, weight_decay=0.0, betas=(0.9, 0.95))
    opt = factory(params=[q for q in model.parameters() if q.requires_grad])
    batches = torch.load(args.batches)
    hp = json.loads(args.hparams)
    make = {"dpo": lambda h: DPOModule(model, factory, beta=h["beta"]),
            "dckd": lambda h: DCKDModule(model, factory, alpha=h["alpha"]),
            "adpa": lambda h: ADPAModule(model, factory, gamma=h["gamma"], advantage_clamp=h["advantage_clamp"]),
            "pad_lppd": lambda h: PADModule(model, factory, loss_fn=functools.partial(old_pad.lppd_loss, beta=h["beta"])),
            "pad_lvpd": lambda h: PADModule(model, factory, loss_fn=functools.partial(old_pad.lvpd_loss, beta=h["beta"]))}
    modules = {m: make[m](hp[m]) for m in batches if m in make}
    sft = SFTModule(model, factory)
    print(json.dumps({"ready": sorted(modules), "distill": distill.__file__}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        method, kind = words
        module = modules[method] if kind == "method" else sft
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        loss, _ = module.model_step(batches[method])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps([wall, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, r1.ru_minflt - r0.ru_minflt]),
              flush=True)


if __name__ == "__main__":
    main()
