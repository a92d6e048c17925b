"""K β-VAEs with MLP networks trained as one stacked model ("fused"). Read it top to bottom.

Why: the seed model is tiny, so one trial leaves a CPU core (or a GPU) mostly idle and pays
Python's per-operation overhead for little arithmetic. K members stacked, weights (K, in, out) and
one torch.baddbmm per layer, train K models for the price of a few (benchmarks/fused.py).

The contract, per member k (tests/test_stacked_vae.py checks each claim):
- Networks: the project's MLPEncoder/MLPDecoder (vae/models/networks.py), the same hidden sizes and
  activations for all members. Member k's slice of a stacked layer is its nn.Linear transposed.
- Latent sizes are padded to the largest, L, and masked: z and the KL of a padded dim are zero, so
  padded head outputs and decoder inputs get exactly zero gradient, Adam turns an always-zero
  gradient into a zero update, and they stay at their initial zero. Member k computes the loss and
  gradients of a model of its own latent size.
- Loss: its own β and reduction, as BetaVAE.loss. The stack minimises Σ_k loss_k; members share no
  parameter, so the gradient of member k's slice is that of loss_k alone.
- Optimiser: one torch.optim.Adam over the stacked tensors; Adam is element-wise, so member k's
  update is its own. Learning rates may differ: Adam runs at REFERENCE_LR and member k's update is
  scaled by lr_k / REFERENCE_LR (Adam's update is proportional to its lr, ε included): exact up to
  float rounding, and a member's update depends on its own lr only, never on the others'.
- Gradient clipping (BetaVAE.gradient_clip_val): by the norm of member k's own gradients, as
  torch.nn.utils.clip_grad_norm_ does for a solo model.
- Noise: member k draws its reparameterisation noise from its own torch.Generator, and its batches
  come in its solo order (sweeps/fused/member_batches.py), so a member's trajectory does not depend on
  which others share the stack: removing one leaves the others bit-identical to a stack built
  without it (with the same padded latent size, which sets the matrix shapes and so the rounding).
  Optionally one generator for the whole group: one draw per step instead of K, for large K on a
  GPU, at the price of that independence.
- Divergence: a member whose loss is not finite is removed before its update (a solo run raises
  DivergedError there, before its optimiser step); the others take their step.
Evaluation (stacked_evaluation.py) runs all members on each batch of images at once. What can be
stacked is decided in stackable.py. Checkpoints stay solo: solo_states.py reads and writes member
k's state dicts (they load into a BetaVAE of its latent size and its Adam) through ``_index`` here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vae.models import objective
from vae.models.beta_vae import BetaVAE
from sweeps.fused.solo_states import SoloStates
from sweeps.fused.stackable import activation_of, architecture, linears, member_lr

# Adam's default and the project's lr. Adam runs at this lr, whatever the members': a fixed
# reference, not the group's largest, so that no member's rounding depends on its group mates.
REFERENCE_LR = 1e-3


@dataclass
class StepResult:
    """One training step. Tensors are (K,) over the members present at the step's start."""

    loss: torch.Tensor
    distortion: torch.Tensor      # batch means, nats per image
    rate: torch.Tensor
    finite: torch.Tensor          # bool; False: that member diverged and has been removed
    member_ids: list              # ids of those members, in stack order
    diverged: list                # ids of the members removed at this step
    kept: list[int] | None        # stack positions kept (None: all); slice MemberBatches with it


class StackedVAE(SoloStates, nn.Module):
    def __init__(self, *, image_shape: Sequence[int], layer_sizes: Sequence[tuple[int, int]], n_enc: int,
                 encoder_activation: nn.Module, decoder_activation: nn.Module, min_scale: float,
                 latent_sizes: Sequence[int], betas: Sequence[float], reductions: Sequence[str],
                 lrs: Sequence[float], clip_norms: Sequence[float | None],
                 generators: Sequence[torch.Generator] | torch.Generator, member_ids: Sequence | None = None,
                 layer_names: Sequence[str] = (), padded_latent: int = 0,
                 device: torch.device | str | None = None):
        super().__init__()
        # One generator per member: its own noise stream. One torch.Generator for the whole group:
        # one draw per step instead of K small ones (for K in the hundreds on a GPU, where K kernel
        # launches can cost more than the step), at the price of noise that depends on the group.
        self.group_generator = generators if isinstance(generators, torch.Generator) else None
        generators = [] if self.group_generator else list(generators)
        if not (len(latent_sizes) == len(betas) == len(reductions) == len(lrs) == len(clip_norms)
                == (len(generators) if generators else len(latent_sizes))):
            raise ValueError("one latent size, β, reduction, lr, clip norm and generator per member")
        if any(r not in objective.REDUCTIONS for r in reductions):
            raise ValueError(f"reduction must be one of {objective.REDUCTIONS}, not {list(reductions)}")
        self.image_shape, self.num_pixels = tuple(image_shape), math.prod(image_shape)
        self.n_enc, self.min_scale, self.layer_names = n_enc, min_scale, list(layer_names)
        self.encoder_activation, self.decoder_activation = encoder_activation, decoder_activation
        self.latent_sizes, self.betas, self.reductions = list(latent_sizes), list(betas), list(reductions)
        self.lrs, self.clip_norms, self.generators = list(lrs), list(clip_norms), list(generators)
        self.member_ids = list(member_ids) if member_ids is not None else list(range(len(latent_sizes)))
        self.max_latent = max(*self.latent_sizes, padded_latent)
        # Layers as (in, out): the head's outputs and the decoder's first inputs are 2L and L.
        L = self.max_latent
        sizes = [(2 * L if i == n_enc - 1 else o) for i, (_, o) in enumerate(layer_sizes)]
        sizes = [(L if i == n_enc else n_in, o) for i, ((n_in, _), o) in enumerate(zip(layer_sizes, sizes))]
        k = len(self.latent_sizes)
        # Zeros: the padded entries must start (and so stay) at zero; from_members fills the rest.
        self.weights = nn.ParameterList([nn.Parameter(torch.zeros(k, i, o, device=device)) for i, o in sizes])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(k, 1, o, device=device)) for _, o in sizes])
        self._member_tensors()
        self.optimizer = self._make_optimizer()

    def _member_tensors(self) -> None:
        """Per-member constants as (K, ...) tensors, rebuilt whenever members are removed."""
        device = self.weights[0].device
        sizes = torch.tensor(self.latent_sizes, dtype=torch.long, device=device)
        self.mask = (torch.arange(self.max_latent, device=device) < sizes.view(-1, 1, 1)).float()  # (K,1,L)
        # Each member's objective.loss_weights, as (K,) tensors: the one definition of the loss.
        weights = [objective.loss_weights(b, r, self.num_pixels, size)
                   for b, r, size in zip(self.betas, self.reductions, self.latent_sizes)]
        self.distortion_weight, self.rate_weight = (torch.tensor([w[i] for w in weights], device=device)
                                                    for i in (0, 1))
        self.scaled_lr = any(lr != REFERENCE_LR for lr in self.lrs)
        self.lr_scale = torch.tensor([lr / REFERENCE_LR for lr in self.lrs], device=device).view(-1, 1, 1)
        self.clip = torch.tensor([c if c else math.inf for c in self.clip_norms], device=device)
        self.clipping = any(self.clip_norms)

    def _make_optimizer(self) -> torch.optim.Adam:
        # fused: one kernel per tensor instead of ~10 passes over it (much faster at large K; BENCHMARKS.md).
        # Still element-wise: members stay independent.
        fused = True if self.weights[0].device.type in ("cpu", "cuda") else None
        return torch.optim.Adam(self.parameters(), lr=REFERENCE_LR, fused=fused)

    def __len__(self) -> int:
        return len(self.latent_sizes)

    # --- building from solo members, and back -----------------------------------------------
    @classmethod
    def from_members(cls, models: Sequence[BetaVAE], generators: Sequence[torch.Generator] | torch.Generator,
                     member_ids: Sequence | None = None, optimizer_states: Sequence[dict] | None = None,
                     padded_latent: int = 0, device: torch.device | str | None = None) -> "StackedVAE":
        """Stack solo BetaVAEs (weights copied). ``generators``: one per member, the source of its
        noise (sweeps/fused/member_batches.py, member_generator), or one for the group (see __init__). ``optimizer_states``: their solo
        Adam state dicts, to resume (all at the same step). ``padded_latent``: pad latents to at
        least this size (a member's float rounding depends on the padded shape, not on its group
        mates; removing members keeps the shape). Build on the training device."""
        if not models:
            raise ValueError("no members to stack")
        arch = [architecture(m) for m in models]
        if any(a != arch[0] for a in arch):
            raise ValueError(f"members differ in more than the latent size: {sorted(set(arch))}")
        first = models[0]
        layers = linears(first)
        n_enc = sum(1 for m in first.encoder.modules() if isinstance(m, nn.Linear))
        stack = cls(image_shape=first.decoder.image_shape, layer_sizes=arch[0][2], n_enc=n_enc,
                    encoder_activation=copy.deepcopy(activation_of(first.encoder.body)),
                    decoder_activation=copy.deepcopy(activation_of(first.decoder.body)),
                    min_scale=first.encoder.head.min_scale, latent_sizes=[m.latent_size for m in models],
                    betas=[float(m.beta) for m in models], reductions=[m.reduction for m in models],
                    lrs=[member_lr(m) for m in models],
                    clip_norms=[getattr(m, "gradient_clip_val", None) for m in models],
                    generators=generators, member_ids=member_ids, layer_names=[n for n, _ in layers],
                    padded_latent=padded_latent, device=device)
        params = list(stack.parameters())
        with torch.no_grad():
            for k, model in enumerate(models):
                stack._restack(k, [p.detach() for p in model.parameters()], params)
        if optimizer_states:
            stack._load_member_optimizer_states(optimizer_states)
        return stack

    def _index(self, layer: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (inputs) and columns (outputs) of stacked layer ``layer`` that member k's solo layer
        occupies: all of them, but for the member's latent size where a layer meets z."""
        device = self.weights[layer].device
        n_in, n_out = self.weights[layer].shape[1:]
        size, L = self.latent_sizes[k], self.max_latent
        rows = torch.arange(size if layer == self.n_enc else n_in, device=device)   # decoder input: z
        if layer == self.n_enc - 1:   # encoder head: loc in columns [0, L), raw scale in [L, 2L)
            cols = torch.cat([torch.arange(size, device=device), L + torch.arange(size, device=device)])
        else:
            cols = torch.arange(n_out, device=device)
        return rows, cols

    def _unstack(self, k: int, stacked: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Member k's tensors in its solo parameter order, from tensors laid out like parameters()."""
        n, out = len(self.weights), []
        for i in range(n):
            rows, cols = self._index(i, k)
            out += [stacked[i][k][rows][:, cols].T.contiguous(), stacked[n + i][k, 0, cols].clone()]
        return out

    def _restack(self, k: int, solo: Sequence[torch.Tensor], stacked: Sequence[torch.Tensor]) -> None:
        n = len(self.weights)
        for i in range(n):
            rows, cols = self._index(i, k)
            stacked[i][k][rows.view(-1, 1), cols] = solo[2 * i].T.to(stacked[i])
            stacked[n + i][k, 0, cols] = solo[2 * i + 1].to(stacked[n + i])

    # --- the model ---------------------------------------------------------------------------
    def _layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.biases[i], h, self.weights[i])     # (K, N, in) @ (K, in, out) + (K, 1, out)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, scale) of q(z|x), each (K, N, L), for images x (K, N, pixels)."""
        h = x
        for i in range(self.n_enc - 1):
            h = self.encoder_activation(self._layer(i, h))
        loc, raw_scale = self._layer(self.n_enc - 1, h).chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits (K, N, pixels) for latents z (K, N, L)."""
        h = z
        for i in range(self.n_enc, len(self.weights) - 1):
            h = self.decoder_activation(self._layer(i, h))
        return self._layer(len(self.weights) - 1, h)

    def member_noise(self, n: int) -> torch.Tensor:
        """(K, n, L) standard normals, member k's drawn from its own generator with its solo shape."""
        if self.group_generator is not None:
            return torch.randn(len(self), n, self.max_latent, generator=self.group_generator,
                               device=self.weights[0].device)
        eps = self.weights[0].new_zeros(len(self), n, self.max_latent)
        for k, (generator, size) in enumerate(zip(self.generators, self.latent_sizes)):
            eps[k, :, :size] = torch.randn(n, size, generator=generator, device=eps.device)
        return eps

    def terms(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-image distortion and rate (K, N), per-dim KL and loc (K, N, L), one reparameterised
        sample, for images x (K, N, ...). ``eps``: the noise (K, N, L); member_noise() if not given."""
        x = x.flatten(2)
        loc, scale = self.posterior(x)
        eps = self.member_noise(x.shape[1]) if eps is None else eps
        z = (loc + eps * scale) * self.mask
        kl_per_dim = objective.rate_per_dim(loc, scale, self.mask)
        distortion = objective.distortion(self.decode(z), x, image_dims=1)
        return {"distortion": distortion, "rate": kl_per_dim.sum(-1), "kl_per_dim": kl_per_dim, "loc": loc}

    def loss(self, distortion: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        """Each member's objective.loss, (K,), from per-image terms (K, N)."""
        return objective.loss(distortion, rate, self.distortion_weight, self.rate_weight)

    # --- training ----------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor) -> StepResult:
        """One optimiser step of every member on its own batch, x (K, B, C, H, W)."""
        t = self.terms(x)
        loss = self.loss(t["distortion"], t["rate"])
        finite = torch.isfinite(loss)
        all_finite = bool(finite.all())     # one sync per step, as a solo run's check
        self.optimizer.zero_grad(set_to_none=True)
        # A diverged member's loss is left out of the sum; its own gradients (NaN) go with it below.
        (loss if all_finite else loss.where(finite, 0.0)).sum().backward()
        ids, kept, diverged = list(self.member_ids), None, []
        if not all_finite:
            kept = finite.nonzero().flatten().tolist()
            diverged = [ids[i] for i in range(len(ids)) if i not in kept]
            self.remove_members(kept)
        if len(self):
            self._clip_gradients()
            self._optimizer_step()
        return StepResult(loss.detach(), t["distortion"].detach().mean(1), t["rate"].detach().mean(1),
                          finite, ids, diverged, kept)

    def _clip_gradients(self) -> None:
        if not self.clipping:
            return
        grads = [p.grad for p in self.parameters()]
        # clip_grad_norm_ per member: the norm of the per-tensor norms, coefficient clamped at 1
        norms = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1)
                                                      for g in grads]), dim=0)
        coef = (self.clip / (norms + 1e-6)).clamp(max=1.0).view(-1, 1, 1)
        for g in grads:
            g.mul_(coef)

    def _optimizer_step(self) -> None:
        if not self.scaled_lr:
            self.optimizer.step()
            return
        before = [p.detach().clone() for p in self.parameters()]
        self.optimizer.step()      # at REFERENCE_LR
        with torch.no_grad():
            for p, p0 in zip(self.parameters(), before):
                # p0 + s·(p − p0); lerp returns p itself at s = 1: a member at REFERENCE_LR is untouched
                p.copy_(p0.lerp_(p, self.lr_scale))

    @torch.no_grad()
    def remove_members(self, keep: Sequence[int]) -> None:
        """Keep only the members at stack positions ``keep`` (in that order): parameters, their
        gradients and Adam's state are sliced, so the others continue exactly as they would have."""
        keep = list(keep)
        index = torch.tensor(keep, dtype=torch.long, device=self.weights[0].device)
        state = self.optimizer.state_dict()
        state["state"] = {j: {key: v[index.to(v.device)] if v.dim() else v for key, v in s.items()}
                          for j, s in state["state"].items()}
        for params in (self.weights, self.biases):
            for i, p in enumerate(params):
                sliced = nn.Parameter(p[index])
                sliced.grad = None if p.grad is None else p.grad[index]
                params[i] = sliced
        for name in ("latent_sizes", "betas", "reductions", "lrs", "clip_norms", "member_ids",
                     *(["generators"] if self.generators else [])):
            setattr(self, name, [getattr(self, name)[i] for i in keep])
        self._member_tensors()
        self.optimizer = self._make_optimizer()
        self.optimizer.load_state_dict(state)
