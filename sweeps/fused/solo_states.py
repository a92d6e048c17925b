"""A stack member's state as its solo model would hold it (parameters, gradients, Adam's moments),
and solo optimiser states stacked back: what makes a fused member's checkpoint a solo checkpoint."""

from __future__ import annotations

from typing import Sequence

import torch


class SoloStates:
    """Part of StackedVAE (stacked_vae.py): reads and writes member k's tensors through the stack's
    ``_unstack``/``_restack`` (its one layout)."""

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k (stack position) as the state dict of a solo BetaVAE of its latent size."""
        with torch.no_grad():
            tensors = self._unstack(k, [p.detach() for p in self.parameters()])
        state = {f"{name}.{kind}": t for name, pair in zip(self.layer_names, zip(tensors[::2], tensors[1::2]))
                 for kind, t in zip(("weight", "bias"), pair)}
        return state

    def member_gradients(self, k: int) -> list[torch.Tensor]:
        """Member k's gradients in its solo parameter order (for checks)."""
        return self._unstack(k, [p.grad for p in self.parameters()])

    def member_optimizer_state_dict(self, k: int) -> dict:
        """Member k's Adam state as a solo ``torch.optim.Adam(model.parameters())`` saves it."""
        group = {key: v for key, v in self.optimizer.param_groups[0].items() if key != "params"}
        # a solo Adam's defaults: it picks its own implementation
        group.update(lr=self.lrs[k], fused=None, foreach=None, params=list(range(2 * len(self.weights))))
        params, state = list(self.parameters()), {}
        if self.optimizer.state:   # no state before the first step
            step = self.optimizer.state[params[0]]["step"]
            moments = {key: self._unstack(k, [self.optimizer.state[p][key] for p in params])
                       for key in ("exp_avg", "exp_avg_sq")}
            state = {j: {"step": step.detach().cpu().clone(), "exp_avg": moments["exp_avg"][j],
                         "exp_avg_sq": moments["exp_avg_sq"][j]} for j in range(len(params))}
        return {"state": state, "param_groups": [group]}

    def _load_member_optimizer_states(self, states: Sequence[dict]) -> None:
        steps = {float(s["state"][0]["step"]) if s["state"] else 0.0 for s in states}
        if len(steps) != 1:
            raise ValueError(f"members resume at different optimiser steps {sorted(steps)}; stack "
                             f"only members at the same step")
        if steps == {0.0}:
            return
        full = self.optimizer.state_dict()
        params = list(self.parameters())
        moments = {key: [torch.zeros_like(p) for p in params] for key in ("exp_avg", "exp_avg_sq")}
        for k, s in enumerate(states):
            for key, stacked in moments.items():
                self._restack(k, [s["state"][j][key] for j in range(len(params))], stacked)
        step = states[0]["state"][0]["step"]
        full["state"] = {j: {"step": torch.as_tensor(step).clone(), "exp_avg": moments["exp_avg"][j],
                             "exp_avg_sq": moments["exp_avg_sq"][j]} for j in range(len(params))}
        self.optimizer.load_state_dict(full)
