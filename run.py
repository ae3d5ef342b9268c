"""Entry point: compose the config, run the stages, print the table, return the sweep metric.

    python run.py                                   # toy world end to end on the CPU
    python run.py -m method=dpo model=gemma,llama   # a multirun over models
"""
import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from distill.pipeline import run

    return run(cfg)


if __name__ == "__main__":
    main()
