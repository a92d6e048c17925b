"""Encoders and decoders. Each is built from its config node in ``conf/model/``.

An encoder maps images (B, C, H, W) to the parameters of a diagonal Gaussian posterior;
a decoder maps latents (B, L) to Bernoulli logits shaped like the images.
To add a network: write a class with the same call signature in a module of your own, then a yaml
in conf/model/ whose ``_target_`` names it (README, "Add a model: one module and one YAML").
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vae.errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def check_activation(key: str, name: str) -> str:
    if name not in ACTIVATIONS:
        raise ConfigError(f"{key}={name} is not an option; choose one of: {', '.join(ACTIVATIONS)}")
    return name


def make_activation(name: str) -> nn.Module:
    return ACTIVATIONS[check_activation("activation", name)]()


def check_sizes(key: str, sizes: Sequence[int]) -> list[int]:
    sizes = list(sizes)
    if not sizes or any(not isinstance(s, int) or s <= 0 for s in sizes):
        raise ConfigError(f"{key}={sizes} must be a non-empty list of positive integers, e.g. [100,100]")
    return sizes


def mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers with an activation after each one."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), make_activation(activation)]
    return nn.Sequential(*layers)


class GaussianHead(nn.Module):
    """Features -> (loc, scale) of a diagonal Gaussian.

    The scale is softplus(raw) + min_scale, so it can never reach 0 (the seed notebook's
    square(linear) could, which makes log q(z|x) infinite).
    """

    def __init__(self, in_features: int, latent_size: int, min_scale: float = 1e-4):
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * latent_size)
        self.min_scale = min_scale

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.linear(h).chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale


class MLPEncoder(nn.Module):
    def __init__(self, image_shape: Sequence[int], latent_size: int,
                 hidden_sizes: Sequence[int] = (100, 100), activation: str = "relu"):
        super().__init__()
        hidden = check_sizes("model.encoder.hidden_sizes", hidden_sizes)
        check_activation("model.encoder.activation", activation)
        self.body = nn.Sequential(nn.Flatten(), mlp([math.prod(image_shape), *hidden], activation))
        self.head = GaussianHead(hidden[-1], latent_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.body(x))


class MLPDecoder(nn.Module):
    def __init__(self, image_shape: Sequence[int], latent_size: int,
                 hidden_sizes: Sequence[int] = (100, 100), activation: str = "relu"):
        super().__init__()
        hidden = check_sizes("model.decoder.hidden_sizes", hidden_sizes)
        check_activation("model.decoder.activation", activation)
        self.image_shape = tuple(image_shape)
        self.body = mlp([latent_size, *hidden], activation)
        self.out = nn.Linear(hidden[-1], math.prod(image_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(z)).view(-1, *self.image_shape)


class ConvEncoder(nn.Module):
    """Strided convolutions (28 -> 14 -> 7 for two layers), then the Gaussian head."""

    def __init__(self, image_shape: Sequence[int], latent_size: int,
                 channels: Sequence[int] = (32, 64), activation: str = "relu"):
        super().__init__()
        channels = check_sizes("model.encoder.channels", channels)
        check_activation("model.encoder.activation", activation)
        c, h, w = image_shape
        layers: list[nn.Module] = []
        for c_in, c_out in zip([c, *channels[:-1]], channels):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), make_activation(activation)]
            h, w = h // 2, w // 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = GaussianHead(channels[-1] * h * w, latent_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.body(x))


class ConvDecoder(nn.Module):
    """The mirror of ConvEncoder: a linear layer to a small feature map, then transposed convs."""

    def __init__(self, image_shape: Sequence[int], latent_size: int,
                 channels: Sequence[int] = (64, 32), activation: str = "relu"):
        super().__init__()
        channels = check_sizes("model.decoder.channels", channels)
        check_activation("model.decoder.activation", activation)
        c, h, w = image_shape
        scale = 2 ** len(channels)
        if h % scale or w % scale:
            raise ConfigError(f"model.decoder.channels has {len(channels)} layers; the image side "
                              f"{h} must be divisible by 2^{len(channels)}")
        self.start = (channels[0], h // scale, w // scale)
        self.project = nn.Sequential(nn.Linear(latent_size, math.prod(self.start)), make_activation(activation))
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                       make_activation(activation)]
        layers.append(nn.ConvTranspose2d(channels[-1], c, kernel_size=4, stride=2, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(-1, *self.start))
