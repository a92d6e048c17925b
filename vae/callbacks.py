"""Lightning callbacks of this project. Checkpointing and progress bars are Lightning's own."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import WandbLogger
import torch
from torchvision.io import encode_png

from vae import figures
from protocol.atomic import atomic_write_bytes

# zlib level 1, not libpng's default 6: several times faster to encode for files ~5% larger (BENCHMARKS.md)
PNG_COMPRESSION = 1


class ImageLogger(L.Callback):
    """Every ``every_n_steps`` training steps and once after testing, draws the model's figures,
    saves them as PNGs under ``output_dir`` and sends them to every logger that takes images.

    Figures: reconstructions beside their inputs, the 2-D traversal grid (latent dims 0 and 1),
    one traversal row per latent dim, samples from the prior, and for a 2-D latent space the
    test set's posterior means coloured by label (for a dataset with labels).
    Any model with the figure interface (figures.can_draw) gets them; others are skipped.
    """

    def __init__(self, output_dir: str, every_n_steps: int = 256, num_examples: int = 8,
                 traversal_steps: int = 11, traversal_span: float = 3.0, num_samples: int = 64):
        self.output_dir = Path(output_dir)
        self.every_n_steps, self.num_examples = every_n_steps, num_examples
        self.traversal_steps, self.traversal_span, self.num_samples = traversal_steps, traversal_span, num_samples

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and step < (trainer.max_steps or -1):
            self.log_figures(trainer, pl_module, final=False)

    def on_test_end(self, trainer: L.Trainer, pl_module) -> None:
        self.log_figures(trainer, pl_module, final=True)

    def draw(self, trainer: L.Trainer, model, final: bool) -> dict[str, torch.Tensor]:
        return self.draw_from(trainer.datamodule, model, final)

    def draw_from(self, datamodule, model, final: bool) -> dict[str, torch.Tensor]:
        split = datamodule.split("test" if final else "val")
        examples = datamodule.as_float(split.images[: self.num_examples])
        grids = {"reconstructions": figures.reconstructions(model, examples),
                 "traversal_rows": figures.traversal_rows(model, self.traversal_steps, self.traversal_span),
                 "prior_samples": figures.prior_samples(model, self.num_samples)}
        if model.latent_size >= 2:
            grids["traversal_grid"] = figures.traversal_grid(model, self.traversal_steps, self.traversal_span)
        info = datamodule.info
        results = getattr(model, "test_results", {})
        if final and results.get("mutual_info"):   # vae/metrics/callback.py, on data with factors
            grids["mutual_info"] = figures.mutual_info_matrix(results["mutual_info"], results["factor_names"])
        if final and model.latent_size == 2 and split.labels is not None and info.label_name:
            grids["latent_scatter"] = figures.latent_scatter(model, datamodule.as_float(split.images), split.labels,
                                                             info.label_name, info.num_classes)
        return grids

    def log_figures(self, trainer: L.Trainer, model, final: bool) -> None:
        if not trainer.is_global_zero:
            return
        self.write_figures(model, trainer.datamodule, trainer.loggers, trainer.global_step, final)

    def write_figures(self, model, datamodule, loggers, step: int, final: bool) -> None:
        """Draw, save the PNGs and send them to the loggers; also called outside a Trainer (a fused
        group's members, sweeps/fused/fused_run.py)."""
        if not figures.can_draw(model):
            return
        was_training = model.training
        model.eval()
        try:
            grids = self.draw_from(datamodule, model, final)
        finally:
            model.train(was_training)
        suffix = "" if final else f"_step{step:06d}"
        paths = {name: self.output_dir / f"{name}{suffix}.png" for name in grids}
        for name, grid in grids.items():
            atomic_write_bytes(paths[name], encode_png(grid, compression_level=PNG_COMPRESSION).numpy().tobytes())
        for logger in loggers:
            if isinstance(logger, WandbLogger):  # CSVLogger has no images; the PNGs above serve it
                import wandb

                # From the PNG files just written: wandb.Image of an array would encode it again.
                logger.experiment.log({f"images/{name}": wandb.Image(str(path)) for name, path in paths.items()}
                                      | {"trainer/global_step": step})


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar, labelled by step budget: runs here are measured in steps, and with
    max_epochs=-1 the stock label reads "Epoch 0/-2"."""

    def _get_train_description(self, current_epoch: int) -> str:
        return f"Epoch {current_epoch} (max_steps={self.trainer.max_steps})"
