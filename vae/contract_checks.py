"""The dataset and model contracts, checked against what the code actually does before training.

A dataset's ``DatasetInfo`` (vae/data/base.py) and a model's networks are promises that the rest of
the code trusts: a factor declared with 2 values whose labels take 3 gives plausible but wrong
disentanglement scores, and an image or logits shape that differs from the declared one fails
deep inside the first step. Here each promise is compared with a small sample of the real thing,
and a broken one costs one line naming the module, the declared value and the actual one.

Cheap on purpose (a few ms once the data is loaded, which training needs anyway): the images are
sampled, the factor and label columns are checked whole (a bincount per column), the networks
run once on a batch of two images.
"""

from __future__ import annotations

import numpy as np
import torch

from vae.data.info import PIXEL_KINDS
from vae.errors import ContractError

SAMPLE = 64           # images checked per split for shape and range
FACTOR_ROWS = 8       # factor rows rendered by images_from_factors and compared with the stored images
BATCH = 2             # images in the networks' test batch (BatchNorm needs more than one)
# A declared value its labels never take is a mistake only where the splits are large enough to hold
# it: at 20 rows per value a uniform factor misses one with probability e^-20 (a small train_subset
# with small val and test sets would otherwise be blamed on the module).
ROWS_PER_VALUE = 20


def name_of(obj) -> str:
    kind = obj if isinstance(obj, type) else type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


# --- the dataset ------------------------------------------------------------------------------
def check_info(datamodule) -> None:
    """The DatasetInfo's own values (no data needed)."""
    who = name_of(datamodule)
    info = getattr(datamodule, "info", None)
    if info is None:
        raise ContractError(f"{who} sets no info; give it a vae.data.base.DatasetInfo (see vae/data/base.py)")
    shape = tuple(info.image_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ContractError(f"{who} declares image_shape={shape}; it must be (channels, height, width), "
                            f"e.g. (1, 28, 28)")
    if info.pixels not in PIXEL_KINDS:
        raise ContractError(f"{who} declares pixels={info.pixels!r}; it must be one of: {', '.join(PIXEL_KINDS)}")
    for factor in info.factors:
        if not (isinstance(factor.size, int) and factor.size >= 1):
            raise ContractError(f"{who} declares factor {factor.name!r} with size {factor.size}; it must be an integer ≥ 1")


def check_dataset(datamodule) -> None:
    """Compare the DatasetInfo with the loaded splits (``setup()`` loads them, once per process)."""
    check_info(datamodule)
    datamodule.setup()
    who, info = name_of(datamodule), datamodule.info
    splits = {name: datamodule.split(name) for name in ("train", "val", "test")}
    for name, split in splits.items():
        _check_images(who, info, name, split.images, datamodule)
    _check_labels(who, info, splits)
    _check_factors(who, info, splits)
    if info.factors:
        _check_images_from_factors(who, info, splits["train"], datamodule)


def _check_images(who, info, split_name: str, images: torch.Tensor, datamodule) -> None:
    shape, declared = tuple(images.shape[1:]), tuple(info.image_shape)
    if shape != declared:
        raise ContractError(f"{who} declares image_shape={declared} but its {split_name} images are {shape}; "
                            f"make its DatasetInfo's image_shape {shape}, or its images {declared}")
    rows = torch.linspace(0, len(images) - 1, min(SAMPLE, len(images))).long()
    sample = datamodule.as_float(images[rows])
    low, high = float(sample.min()), float(sample.max())
    if low < 0 or high > 1:
        stored = f"{images.dtype}".removeprefix("torch.")
        raise ContractError(f"{who}'s {split_name} images ({stored}, pixels={info.pixels!r}) take values in "
                            f"[{low:g}, {high:g}] as floats; they must lie in [0, 1] (uint8 storage is read as "
                            f"0/1 for binary pixels, 0..255 for grey)")
    if info.pixels == "binary" and not torch.all((sample == 0) | (sample == 1)):
        odd = float(sample[(sample != 0) & (sample != 1)][0])
        raise ContractError(f"{who} declares pixels='binary' but its {split_name} images hold the value {odd:g}; "
                            f"declare pixels='grey', or store 0/1 images")


def _check_labels(who, info, splits) -> None:
    if info.num_classes is None:
        return
    counts = np.zeros(info.num_classes, dtype=np.int64)
    for name, split in splits.items():
        if split.labels is None:
            raise ContractError(f"{who} declares num_classes={info.num_classes} but its {name} split has no labels; "
                                f"give Split(labels=...) or declare num_classes=None")
        labels = split.labels.long()
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= info.num_classes:
            raise ContractError(f"{who} declares num_classes={info.num_classes} but its {name} labels take values "
                                f"{low}..{high}; declare num_classes={high + 1}, or fix its labels")
        counts += np.bincount(labels.numpy(), minlength=info.num_classes)
    if (counts == 0).any() and counts.sum() >= ROWS_PER_VALUE * info.num_classes:
        raise ContractError(f"{who} declares num_classes={info.num_classes} but its labels take only "
                            f"{int((counts > 0).sum())} of them (never {_first_missing(counts)}); "
                            f"declare the number its labels take")


def _check_factors(who, info, splits) -> None:
    if not info.factors:
        return
    sizes = info.factor_sizes
    counts = [np.zeros(size, dtype=np.int64) for size in sizes]
    for name, split in splits.items():
        if split.factors is None:
            raise ContractError(f"{who} declares factors ({', '.join(info.factor_names)}) but its {name} split has "
                                f"no factor labels; give Split(factors=...)")
        if tuple(split.factors.shape[1:]) != (len(sizes),):
            raise ContractError(f"{who} declares {len(sizes)} factors ({', '.join(info.factor_names)}) but its "
                                f"{name} split's factor labels have {tuple(split.factors.shape[1:])} columns")
        factors = split.factors.long()
        lows, highs = factors.min(0).values.tolist(), factors.max(0).values.tolist()
        for j, factor in enumerate(info.factors):
            if lows[j] < 0 or highs[j] >= factor.size:
                raise ContractError(f"{who} declares factor {factor.name!r} with {factor.size} values but its "
                                    f"{name} labels take {lows[j]}..{highs[j]}; declare Factor({factor.name!r}, "
                                    f"{highs[j] + 1}), or fix its labels")
            counts[j] += np.bincount(factors[:, j].numpy(), minlength=factor.size)
    for factor, count in zip(info.factors, counts):
        if (count == 0).any() and count.sum() >= ROWS_PER_VALUE * factor.size:
            raise ContractError(f"{who} declares factor {factor.name!r} with {factor.size} values but its labels "
                                f"take only {int((count > 0).sum())} of them (never {_first_missing(count)}); "
                                f"declare the number its labels take")


def _check_images_from_factors(who, info, train, datamodule) -> None:
    rows = torch.linspace(0, len(train) - 1, min(FACTOR_ROWS, len(train))).long()
    factors = train.factors[rows].numpy()
    try:
        rendered = datamodule.images_from_factors(factors)
    except NotImplementedError:
        raise ContractError(f"{who} declares factors ({', '.join(info.factor_names)}) but does not implement "
                            f"images_from_factors(factors), which the disentanglement metrics need; write it "
                            f"(see vae/data/shapes.py), or declare no factors") from None
    expected = (len(rows), *info.image_shape)
    if tuple(rendered.shape) != expected:
        raise ContractError(f"{who}.images_from_factors returned shape {tuple(rendered.shape)} for {len(rows)} "
                            f"factor rows; expected {expected}")
    stored = datamodule.as_float(train.images[rows]).float()
    if not torch.allclose(rendered.float().cpu(), stored, atol=1e-5):
        bad = int((rendered.float().cpu() - stored).abs().flatten(1).amax(1).argmax())
        raise ContractError(f"{who}.images_from_factors does not reproduce the stored image of factors "
                            f"{dict(zip(info.factor_names, factors[bad].tolist()))}; it must return the image "
                            f"the dataset holds for those factor values")


def _first_missing(counts: np.ndarray) -> int:
    return int(np.flatnonzero(counts == 0)[0])


# --- the model --------------------------------------------------------------------------------
def check_model(model, info, keys: dict[str, str] | None = None) -> None:
    """Run the model's encoder and decoder (when it has them, as the templates do) on a batch of
    images of the declared shape: the encoder must give (loc, scale), each (B, latent_size); the
    decoder logits of the images' shape. ``keys``: the config key of each network, for messages."""
    encoder, decoder = getattr(model, "encoder", None), getattr(model, "decoder", None)
    latent = getattr(model, "latent_size", None)
    if not (callable(encoder) and callable(decoder) and isinstance(latent, int)):
        return
    keys = keys or {}
    enc = f"{keys.get('encoder', 'model.encoder')} ({name_of(encoder)})"
    dec = f"{keys.get('decoder', 'model.decoder')} ({name_of(decoder)})"
    shape = (BATCH, *info.image_shape)
    was_training = model.training
    model.eval()    # no BatchNorm statistics from this batch, no dropout
    try:
        with torch.no_grad():
            device = next(model.parameters(), torch.empty(0)).device
            x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device)
            out = _run(enc, encoder, x, f"images {shape}")
            wanted = (BATCH, latent)
            if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
                got = (f"one tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor)
                       else f"{type(out).__name__} of {len(out)} items" if isinstance(out, (tuple, list))
                       else type(out).__name__)
                raise ContractError(f"{enc} returned {got} for images {shape}; an encoder returns (loc, scale), "
                                    f"each of shape (batch, latent_size) = {wanted}")
            for part, t in zip(("loc", "scale"), out):
                if tuple(t.shape) != wanted:
                    raise ContractError(f"{enc} returned {part} of shape {tuple(t.shape)} for images {shape}; "
                                        f"loc and scale must be (batch, latent_size) = {wanted}")
            if not bool((out[1] > 0).all()):
                raise ContractError(f"{enc} returned a scale ≤ 0 for images {shape}; a Gaussian's scale must be "
                                    f"positive, e.g. softplus(raw) + 1e-4")
            logits = _run(dec, decoder, out[0], f"latents {wanted}")
            if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != shape:
                got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise ContractError(f"{dec} returned {got} for latents {wanted}; a decoder returns logits "
                                    f"shaped like the images, (batch, C, H, W) = {shape}")
    finally:
        model.train(was_training)


def _run(who: str, network, inputs: torch.Tensor, described: str):
    try:
        return network(inputs)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ContractError(f"{who} fails on {described} (the dataset's declared shape): {reason}") from None
