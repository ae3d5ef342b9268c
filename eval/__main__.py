"""Evaluate a checkpoint with the benchmarks (config: ``conf/eval_standalone.yaml``).

    python -m eval model=artifacts/distill/<key>/model                       # toy world: the four toy benchmarks
    python -m eval model=artifacts/distill/<key>/model eval.benchmarks=[alpaca_eval2,mt_bench]
    python -m eval model=google/gemma-2-2b-it world=full judge=openai        # real benchmarks (hub, OpenAI)
    python -m eval model_outputs=<AlpacaEval model_outputs.json or FastChat answers .jsonl> world=full judge=openai

``model=`` names the checkpoint (a folder or a hub id); since ``model`` is also the config group of
the model family, it is rewritten to ``checkpoint=`` before Hydra reads the command line, and
``family=<name>`` selects the family group instead (whose reference models the toy benchmarks use).
``model_outputs=<file>`` gives a model's answers instead of a checkpoint: they are judged as they
are, by the benchmark whose questions they answer (no model is loaded; see ``python -m eval --help``).
Every other override is Hydra's as usual (``judge=``, ``logger=``, ``eval.*``, ``paths.*``).
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


def rewrite_argv(argv: list[str]) -> list[str]:
    """``model=X`` -> ``checkpoint=X``; ``family=F`` -> ``model=F``."""
    out = []
    for a in argv:
        if a.startswith("model="):
            a = "checkpoint=" + a[len("model="):]
        elif a.startswith("family="):
            a = "model=" + a[len("family="):]
        out.append(a)
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval_standalone")
def main(cfg: DictConfig):
    from eval.standalone import run_standalone

    return run_standalone(cfg)


if __name__ == "__main__":
    from distill.validate import refuse_secret_overrides

    refuse_secret_overrides(sys.argv[1:], "python -m eval")  # before Hydra writes the command line anywhere
    sys.argv = [sys.argv[0], *rewrite_argv(sys.argv[1:])]
    main()
