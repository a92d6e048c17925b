"""Which solo models a StackedVAE can hold: MLP networks of one architecture, trained with Adam;
members may differ in latent size, β, reduction, learning rate and gradient clipping."""

from __future__ import annotations

import torch
from torch import nn

from vae.models.beta_vae import BetaVAE
from vae.models.networks import MLPDecoder, MLPEncoder


def linears(model: BetaVAE) -> list[tuple[str, nn.Linear]]:
    """A member's linear layers, named as in its state dict: encoder body, head, decoder body, out."""
    if not (isinstance(model.encoder, MLPEncoder) and isinstance(model.decoder, MLPDecoder)):
        raise ValueError(f"only MLPEncoder/MLPDecoder members can be stacked, not "
                         f"{type(model.encoder).__name__}/{type(model.decoder).__name__}")
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    # The stack maps solo parameter j to layer j // 2 (weight, bias): check that order holds.
    if [id(p) for p in model.parameters()] != [id(p) for _, m in linears for p in (m.weight, m.bias)]:
        raise ValueError("a member's parameters are not its linear layers' weights and biases in order")
    return linears


def activation_of(body: nn.Module) -> nn.Module:
    kinds = [m for m in body.modules() if not isinstance(m, (nn.Linear, nn.Sequential, nn.Flatten))]
    return kinds[0]


def architecture(model: BetaVAE) -> tuple:
    """What members must share to be stacked: everything but the latent size. Layer sizes are
    (in, out), with None where the latent size enters (the head's outputs, the decoder's inputs)."""
    enc, dec = model.encoder, model.decoder
    n_enc = sum(1 for m in enc.modules() if isinstance(m, nn.Linear))
    sizes = tuple((None if i == n_enc else m.in_features, None if i == n_enc - 1 else m.out_features)
                  for i, (_, m) in enumerate(linears(model)))
    return (tuple(dec.image_shape), n_enc, sizes, repr(activation_of(enc.body)),
            repr(activation_of(dec.body)), enc.head.min_scale)


def member_lr(model: BetaVAE) -> float:
    # Only Adam with its default betas/eps is stacked; a model built with another optimiser
    # (a partial in model.optimizer_factory) must be trained solo.
    factory = getattr(model, "optimizer_factory", None)
    if factory is not None and (getattr(factory, "func", factory) is not torch.optim.Adam
                                or set(getattr(factory, "keywords", {})) - {"lr"}):
        raise ValueError("only members trained with torch.optim.Adam (lr only) can be stacked")
    if model.lr is None:
        raise ValueError("a member has no learning rate")
    return float(model.lr)


def stack_key(model: BetaVAE) -> tuple | None:
    """What members must share to be stacked (everything but latent size, β, reduction, lr and
    gradient clipping), or None for a model that cannot be (other networks, another optimiser).
    A launcher groups jobs by it, and by what their configs share (data, steps, batch size)."""
    try:
        member_lr(model)
        return architecture(model)
    except ValueError:
        return None
