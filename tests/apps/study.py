"""A tiny Hydra app for the report's study analytics: a training-like objective whose value is
dominated by one param (``lr``), so parameter importance has a known answer.

    loss = 10·(log10(lr) + 2.5)² + 0.05·width/64 + (0.02 if act == "tanh" else 0)

lr is worth up to 22.5, width and act a few hundredths. Each job reports a falling loss at
``steps`` steps to its Optuna trial (as train()'s pruning callback does) and stops if the study's
pruner says so; ``lr`` above ``diverge_above`` returns NaN, which the sweeper records as a failed
trial. It also returns ``cost = width/8 − log10(lr)/2`` (a wider net costs more, a bigger lr
trains in fewer steps): width dominates it, and it conflicts with ``loss`` above lr = 10^-2.5, so
a two-objective study gets a real Pareto front and a different dominant param per objective.
"""

import math

import hydra
from omegaconf import DictConfig


def report_steps(cfg: DictConfig, loss: float) -> None:
    """Report loss + 4/(step+1) at each step to the trial the sweeper started for this job; raise
    optuna.TrialPruned when the study's pruner says so (the sweeper marks the trial PRUNED)."""
    identity = cfg.get("optuna") or {}
    if identity.get("trial_id") is None:
        return
    import optuna
    from hydra.utils import instantiate

    study = optuna.load_study(study_name=identity["study_name"], storage=identity["storage"])
    if len(study.directions) > 1:
        return                      # Optuna takes intermediate values for one objective only
    if study.user_attrs.get("pruner"):
        study.pruner = instantiate(study.user_attrs["pruner"])
    trial = optuna.trial.Trial(study, int(identity["trial_id"]))
    for step in range(1, cfg.steps + 1):
        trial.report(loss + 4.0 / step, step=step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")


@hydra.main(version_base="1.3", config_path=".", config_name="study")
def main(cfg: DictConfig) -> dict:
    loss = 10.0 * (math.log10(cfg.lr) + 2.5) ** 2 + 0.05 * cfg.width / 64 + (0.02 if cfg.act == "tanh" else 0.0)
    if cfg.lr > cfg.diverge_above:
        return {"loss": float("nan"), "cost": float("nan")}
    report_steps(cfg, loss)
    return {"loss": loss, "cost": cfg.width / 8 - math.log10(cfg.lr) / 2}


if __name__ == "__main__":
    main()
