"""Experiment loggers: W&B (default), CSV, or none. Lightning's own logger classes do the work."""

from __future__ import annotations

import csv
import io
import logging
import netrc
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, TypeVar

from omegaconf import DictConfig, OmegaConf

from protocol.atomic import atomic_write_text
from protocol import REPLICATE_OF
from vae.replicates import replicate_of
from vae.secrets import redact

log = logging.getLogger(__name__)
T = TypeVar("T")


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(requested: str) -> str:
    """offline when there is no API key (sync later with `wandb sync`), online when there is one.

    WANDB_MODE, when set, wins over the config, as W&B's own tools behave.
    """
    mode = os.environ.get("WANDB_MODE") or requested
    if mode == "auto":
        mode = "online" if has_wandb_credentials() else "offline"
    if mode == "online" and not has_wandb_credentials():
        log.warning("W&B online mode needs an API key (`wandb login` or WANDB_API_KEY); "
                    "logging offline instead, sync later with `wandb sync`")
        mode = "offline"
    return mode


# How long a run waits for the W&B server before it logs offline instead (logger.init_timeout).
DEFAULT_INIT_TIMEOUT = 20.0
# W&B servers this process could not reach: later runs in the same process (a multirun's next
# jobs in one worker) go offline at once instead of waiting again.
_unreachable: dict[str, str] = {}


def wandb_server() -> str:
    return os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"


def start_wandb(start: Callable[[str], T], mode: str, timeout: float) -> T:
    """``start(mode)`` starts a W&B run (W&B's own ``init_timeout`` bounds an online start).

    A key without a reachable server (a cluster's compute nodes, a network outage) must not cost
    the run: if the online start fails, the run logs offline instead (``wandb sync`` uploads it
    later) with one warning. Without this, wandb.init waits ~100 s and raises CommError.
    """
    if mode != "online":
        return start(mode)
    import wandb

    server = wandb_server()
    if server not in _unreachable:
        try:
            return start("online")
        except wandb.errors.CommError as exc:
            # '… while retrying: Post "…": dial tcp …: connect: connection refused': its last clause says why
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            _unreachable[server] = next((ln for ln in lines if "retrying" in ln), lines[0]).rsplit(": ", 1)[-1]
            if wandb.run is not None:
                wandb.finish()
    log.warning("W&B server %s could not be reached (%s; logger.init_timeout=%g s); logging offline "
                "instead, upload later with `wandb sync`", server, _unreachable[server], timeout)
    return start("offline")


def build_loggers(cfg: DictConfig, output_dir: Path, run_name: str, group: str | None, quiet: bool = False,
                  resume_step: int | None = None, concurrent: bool = False) -> list:
    """The history CSV (always: reports read curves from it), plus W&B when logger=wandb.

    When a run resumes from a checkpoint at ``resume_step``, both continue where it left off:
    the CSV keeps its rows before that step, and W&B continues the same run. ``concurrent``: this
    run's W&B run is one of several open at once in this process (a fused group's members).
    """
    from lightning.pytorch.loggers import CSVLogger

    loggers = []
    if cfg.logger.kind != "none":
        csv_logger = CSVLogger(save_dir=str(output_dir), name="csv", version="")
        if resume_step is not None:
            continue_csv_history(csv_logger, resume_step)
        loggers.append(csv_logger)
    if cfg.logger.kind == "wandb":
        previous = previous_wandb_run_id(output_dir) if resume_step is not None else None
        loggers.append(build_wandb_logger(cfg, output_dir, run_name, group, quiet, run_id=previous,
                                          concurrent=concurrent))
    return loggers


def continue_csv_history(csv_logger, resume_step: int) -> None:
    """Keep the rows logged before the checkpoint (later ones will be logged again) and make
    Lightning's CSV writer append to them: creating the writer deletes an existing file."""
    path = Path(csv_logger.log_dir) / "metrics.csv"
    if not path.exists():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = [row for row in reader if row.get("step", "").isdigit() and int(row["step"]) < resume_step]
    with warnings.catch_warnings():  # "logs directory exists and is not empty": yes, on purpose
        warnings.simplefilter("ignore")
        writer_state = csv_logger.experiment  # deletes metrics.csv; the rows are in memory
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, out.getvalue())
    writer_state.metrics_keys = header


def previous_wandb_run_id(output_dir: Path) -> str | None:
    """The id of the W&B run this folder logged to before, from W&B's latest-run link."""
    latest = output_dir / "wandb" / "latest-run"
    if not latest.exists():
        return None
    return latest.resolve().name.rsplit("-", 1)[-1]


def build_wandb_logger(cfg: DictConfig, output_dir: Path, run_name: str, group: str | None, quiet: bool,
                       run_id: str | None = None, concurrent: bool = False):
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    config = redact(OmegaConf.to_container(cfg, resolve=True))
    config[REPLICATE_OF] = replicate_of(cfg)    # W&B "group by" replicate_of: a configuration's seeds together
    timeout = float(cfg.logger.get("init_timeout") or DEFAULT_INIT_TIMEOUT)
    # reinit="create_new" (wandb >= 0.19): a new run beside the open ones (the members of a fused
    # group), not set as wandb.run, so Lightning's WandbLogger does not reuse another member's run.
    settings = wandb.Settings(silent=quiet, init_timeout=timeout, **({"reinit": "create_new"} if concurrent else {}))

    def start(mode: str) -> WandbLogger:
        logger = WandbLogger(
            project=cfg.logger.project, entity=cfg.logger.entity, name=run_name,
            group=cfg.logger.group or group, job_type=cfg.logger.job_type,
            tags=redact(list(cfg.logger.tags)), save_dir=str(output_dir),
            # mode goes to wandb.init as is. Not offline=True: Lightning then sets WANDB_MODE=dryrun
            # for the whole process, and every later job of a multirun worker would stay offline.
            mode=mode, offline=False, config=config, log_model=False, id=run_id,
            settings=settings,
        )
        # Lightning 2.6 always passes anonymous=None, which wandb 0.31 warns about on every run.
        logger._wandb_init.pop("anonymous", None)
        if mode == "online":
            logger.experiment  # noqa: B018 - connect now, while falling back to offline is still possible
        return logger

    return start_wandb(start, wandb_mode(cfg.logger.mode), timeout)


def describe_wandb_run(logger) -> str | None:
    """Where an offline run went and how to upload or browse it, in one line."""
    run = getattr(logger, "_experiment", None)
    if run is None:
        return None
    run_dir = Path(run.settings.sync_dir).resolve()
    if run_dir.is_relative_to(Path.cwd()):
        run_dir = run_dir.relative_to(Path.cwd())
    if run.offline:
        return f"W&B offline run {run_dir} (upload: wandb sync DIR; browse: wandb leet DIR)"
    return f"W&B run: {run.url}"


def finish_loggers(loggers, failed: bool) -> None:
    """Close every logger, marking the run failed if it was. In a multirun, a W&B run left open
    would be reused by the next job, so this runs in a ``finally:``."""
    for logger in loggers:
        logger.finalize("failed" if failed else "success")
    if "wandb" in sys.modules:  # never import wandb (0.7 s) just to close nothing
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=1 if failed else 0)
