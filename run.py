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
    from distill.pipeline import run

    return run(cfg)


if __name__ == "__main__":
    from distill_bench.cli import run_guarded  # configuration errors: the message and the fix, no traceback
    from distill.validate import refuse_secret_overrides

    refuse_secret_overrides(sys.argv[1:])  # before Hydra writes the command line anywhere
    run_guarded(main)
