"""How much this project costs over a plain PyTorch loop, as ratios measured in one run.

    python -m benchmarks.speed                 # all cases, prints a table
    python -m benchmarks.speed --write         # also rewrites BENCHMARKS.md
    python -m benchmarks.speed --cases train   # one case (train, trial, sweep, workers)

The reference is the seed model trained by a loop written for speed (benchmarks/reference.py): the
same networks (vae.models.networks), the same data tensor sliced in place, the same Adam, the same
number of steps, one torch thread. Every case runs both sides in this one invocation, alternating them, and
compares the fastest repeat of each (the minimum is the least disturbed by other processes
on a shared machine). Nothing here asserts a time: it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ["CI"] = "1"  # plain logs, no progress bar: what a sweep does

import torch  # noqa: E402

from vae.config import PROJECT_ROOT  # noqa: E402
from vae.data.mnist import MNISTDataModule  # noqa: E402
from vae.data.mnist_files import ensure_mnist  # noqa: E402
from benchmarks.reference import lean_training, test_neg_elbo  # noqa: E402

SWEEP = ["beta=0,0.01,1", "latent_size=2,10"]
SWEEP_RUNS = [(beta, latent) for beta in (0.0, 0.01, 1.0) for latent in (2, 10)]
MET = {True: "yes", False: "no", None: "–"}
TARGETS = {"train": ("≤", 1.15), "trial": ("≤", 1.5), "sweep": ("≤", 1.5), "workers": ("≥", 1.7)}


# --- the reference: benchmarks/reference.py ------------------------------------------------
plain_training = lean_training


# --- this project's paths ----------------------------------------------------------------------
def compose(overrides: list[str], output_dir: Path):
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    from conftest import compose_cfg  # the same composition the tests use

    return compose_cfg(overrides, output_dir, PROJECT_ROOT / "data")


def project_training(steps: int, workdir: Path) -> float:
    """Case 1: Lightning's fit of the project's model and data, no validation, logger or callbacks."""
    from vae.preflight import build_datamodule, build_model
    from vae.train import build_trainer

    cfg = compose([f"trainer.max_steps={steps}", "logger=none", "callbacks=none",
                   "+trainer.limit_val_batches=0"], workdir)
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, datamodule)
    trainer = build_trainer(cfg, workdir, [], model, datamodule)
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    return time.perf_counter() - started


def project_trial(workdir: Path) -> tuple[float, dict]:
    """Case 2: train(cfg) with the defaults, as `python train.py` runs it (W&B offline, checkpoints,
    figures, test evaluation); data already on disk."""
    from vae.train import train

    cfg = compose([], workdir)
    started = time.perf_counter()
    metrics = train(cfg)
    return time.perf_counter() - started, metrics


def cli_sweep(extra: list[str], workdir: Path) -> tuple[float, list[float]]:
    """The used-by sweep as a user types it, in a fresh process (imports included). Returns the
    wall time and the jobs' end times (their metrics.json), seconds after the start."""
    started = time.time()
    subprocess.run([sys.executable, str(PROJECT_ROOT / "train.py"), "-m", *SWEEP, *extra,
                    f"hydra.sweep.dir={workdir}"], cwd=PROJECT_ROOT, check=True,
                   capture_output=True, env={**os.environ, "WANDB_MODE": "offline", "CI": "1"})
    elapsed = time.time() - started
    results = list(workdir.glob("*/metrics.json"))
    statuses = [json.loads(p.read_text())["status"] for p in results]
    assert statuses == ["completed"] * 6, statuses  # a benchmark of failing runs means nothing
    return elapsed, sorted(p.stat().st_mtime - started for p in results)


def fastest_sweep(extra: list[str], workdir: Path, repeats: int) -> tuple[float, list[float]]:
    """cli_sweep's fastest of ``repeats`` runs, each in a fresh folder."""
    runs = []
    for i in range(repeats):
        shutil.rmtree(workdir, ignore_errors=True)
        runs.append(cli_sweep(extra, workdir / str(i)))
    return min(runs)


def steady_throughput(job_ends: list[float], workers: int) -> float:
    """Jobs finished per second once every worker has finished its first job: start-up (the
    parent's, the workers' imports) and the end-of-sweep report are left out, so this is the
    rate at which a longer sweep of the same jobs would progress."""
    first_round_done = job_ends[workers - 1]
    return (len(job_ends) - workers) / (job_ends[-1] - first_round_done)


# --- the cases -----------------------------------------------------------------------------
def run_cases(cases: list[str], steps: int, repeats: int, sweep_repeats: int, scratch: Path) -> list[dict]:
    ensure_mnist(PROJECT_ROOT / "data", download=False)
    data = MNISTDataModule(data_dir=str(PROJECT_ROOT / "data"), download=False)
    data.setup()
    train_x, test_x = data.split("train").images, data.split("test").images
    plain_training(train_x, 64)  # warm-up: first-call allocations and lazy inits
    rows = []

    def fresh(name: str) -> Path:
        path = scratch / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    def plain_min() -> float:
        return min(plain_training(train_x, steps)[0] for _ in range(repeats))

    if "train" in cases:
        ours, ref = [], []
        for i in range(repeats):  # alternate, so both sides see the same machine weather
            ref.append(plain_training(train_x, steps)[0])
            ours.append(project_training(steps, fresh(f"train{i}")))
        rows.append(row("train", "training steps: Lightning fit vs plain loop", min(ours), min(ref)))

    if "trial" in cases:
        ours, ref, metrics = [], [], {}
        for i in range(repeats):
            elapsed, plain_encoder, plain_decoder = plain_training(train_x, steps)
            ref.append(elapsed)
            elapsed, metrics = project_trial(fresh(f"trial{i}"))
            ours.append(elapsed)
        rows.append(row("trial", "whole trial (train(cfg), W&B offline, test, figures) vs plain loop",
                        min(ours), min(ref)))
        plain_elbo = test_neg_elbo(plain_encoder, plain_decoder, test_x)
        rows.append({"case": "quality", "what": "test −ELBO, nats: project (same seed) vs plain loop",
                     "ours": metrics["test/neg_elbo"], "reference": plain_elbo,
                     "ratio": metrics["test/neg_elbo"] - plain_elbo, "target": "within ±0.5 nat",
                     "met": abs(metrics["test/neg_elbo"] - plain_elbo) <= 0.5})

    if "sweep" in cases:
        plain_six = sum(min(plain_training(train_x, steps, latent, beta)[0] for _ in range(repeats))
                        for beta, latent in SWEEP_RUNS)
        sweep, _ = fastest_sweep([], fresh("sweep"), sweep_repeats)
        rows.append(row("sweep", "`train.py -m beta=0,0.01,1 latent_size=2,10` (default launcher: jobs side "
                        "by side, one per core) vs six plain trainings one after another", sweep, plain_six))
        serial, _ = fastest_sweep(["hydra/launcher=basic"], fresh("serial"), sweep_repeats)
        rows.append(row("sweep", "the same, one job at a time in one process (`hydra/launcher=basic`) vs "
                        "the same six plain trainings", serial, plain_six) | {"target": "none", "met": None})

    if "workers" in cases:
        one, one_ends = fastest_sweep(["hydra.launcher.n_jobs=1"], fresh("workers1"), sweep_repeats)
        two, two_ends = fastest_sweep(["hydra.launcher.n_jobs=2"], fresh("workers2"), sweep_repeats)
        rows.append({"case": "workers", "what": "the same sweep, joblib: 2 workers vs 1, whole command "
                     "(wall time; start-up and report included)",
                     "ours": two, "reference": one, "ratio": one / two, "target": "≥ 1.7", "met": one / two >= 1.7})
        thr_one, thr_two = steady_throughput(one_ends, 1), steady_throughput(two_ends, 2)
        rows.append({"case": "workers", "what": "the same two sweeps: jobs per minute once every worker "
                     "finished its first job", "ours": 60 * thr_two, "reference": 60 * thr_one, "unit": " jobs/min",
                     "ratio": thr_two / thr_one, "target": "≥ 1.7", "met": thr_two / thr_one >= 1.7})
    return rows


def row(case: str, what: str, ours: float, reference: float) -> dict:
    sign, bound = TARGETS[case]
    ratio = ours / reference
    return {"case": case, "what": what, "ours": ours, "reference": reference, "ratio": ratio,
            "target": f"{sign} {bound}", "met": ratio <= bound if sign == "≤" else ratio >= bound}


# --- reporting -----------------------------------------------------------------------------
def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import lightning

    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} thread), "
            f"lightning {lightning.__version__}, Python {platform.python_version()}")


def format_table(rows: list[dict]) -> str:
    lines = ["| case | what | this project | reference | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        unit = r.get("unit") or (" nat" if r["case"] == "quality" else " s")
        ratio = f"{r['ratio']:+.2f} nat" if r["case"] == "quality" else f"{r['ratio']:.2f}×"
        lines.append(f"| {r['case']} | {r['what']} | {r['ours']:.2f}{unit} | {r['reference']:.2f}{unit} | "
                     f"{ratio} | {r['target']} | {MET[r['met']]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="train,trial,sweep,workers")
    parser.add_argument("--steps", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each training and trial")
    parser.add_argument("--sweep-repeats", type=int, default=2, help="repeats of each sweep command (~30-45 s each)")
    parser.add_argument("--write", action="store_true", help="rewrite BENCHMARKS.md with the results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = args.cases.split(",")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        rows = run_cases(cases, args.steps, args.repeats, args.sweep_repeats, Path(scratch))
    table = format_table(rows)
    header = (f"Machine: {machine()}\nSteps per training: {args.steps}, batch 64, repeats: {args.repeats} "
              f"(sweeps: {args.sweep_repeats}; fastest kept), load average at the end: {os.getloadavg()[0]:.2f}, "
              f"benchmark wall time: {time.perf_counter() - started:.0f} s")
    print(header)
    print(table)
    if args.write:
        write_markdown(header, table, " ".join(sys.argv[1:]))


def write_markdown(header: str, table: str, argv: str) -> None:
    path = PROJECT_ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else ""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    block = (f"{start}\nCommand: `python -m benchmarks.speed {argv}`\n\n{header.replace(chr(10), '  ' + chr(10))}\n\n"
             f"{table}\n{end}")
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text + "\n" + block + "\n"
    from protocol.atomic import atomic_write_text

    atomic_write_text(path, text)


if __name__ == "__main__":
    main()
