"""Entry point: compose the config, run the stages, print the table, return the sweep metric.

    python run.py                                   # toy world end to end on the CPU
    python run.py -m method=dpo model=gemma,llama   # a multirun over models
"""
import sys
import warnings

from distill import allocator

allocator.configure()  # before torch allocates: large buffers stay mapped between steps (DISTILL_MALLOC)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

# conf/hydra/launcher/submitit_*.yaml carry the names of the submitit plugin's schemas, so Hydra also
# checks them against those schemas and notes that such matching is deprecated; they list every key.
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema", category=UserWarning)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    if not cfg.get("dry_run"):
        from distill.finished import answer_finished
        from eval.tables import print_table

        finished = answer_finished(cfg, print_table)  # a finished run: its results file, no torch/Lightning
        if finished is not None:
            return finished
    if "distill.pipeline" not in sys.modules:  # the first job: torch, transformers, Lightning load
        from distill.progress import Tracker, period  # (minutes on a loaded machine): lines meanwhile, at

        with Tracker("loading libraries", stage="setup", unit=None, every=period() / 2):  # half the period:
            # its clock starts after Hydra's last line, so its first line must come early
            from distill.pipeline import run  # noqa: F401
    from distill.pipeline import run

    return run(cfg)


if __name__ == "__main__":
    from distill_bench.cli import run_guarded  # configuration errors: the message and the fix, no traceback
    from distill.validate import refuse_secret_overrides

    refuse_secret_overrides(sys.argv[1:])  # before Hydra writes the command line anywhere
    run_guarded(main)
