"""python -m sweeps.report PATH: a report of a finished sweep (see sweeps/report/report.py)."""

from __future__ import annotations

import argparse
import logging
import sys

from protocol.errors import UserError
from sweeps.report.collect import collect_multirun, collect_study
from sweeps.report.report import __doc__ as REPORT_DOC, describe, make_report

log = logging.getLogger("sweeps.report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeps.report", description=REPORT_DOC.split("\n\n")[0])
    parser.add_argument("path", nargs="?", help="a multirun folder (outputs/multiruns/<time>)")
    parser.add_argument("--storage", help="an Optuna storage URL, e.g. sqlite:///outputs/optuna.db")
    parser.add_argument("--study", help="the Optuna study's name (with --storage)")
    parser.add_argument("--out", help="where a study's report goes (default: its trials' sweep folder)")
    parser.add_argument("--metric", default="test/nll_iwae", help="the heatmap's metric (default: %(default)s)")
    parser.add_argument("--no-wandb", action="store_true", help="don't log a W&B report run")
    args = parser.parse_args(argv)
    if bool(args.storage) != bool(args.study) or bool(args.path) == bool(args.storage):
        parser.error("give a multirun folder PATH, or --storage URL --study NAME")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sweep = collect_study(args.storage, args.study, args.out) if args.storage else collect_multirun(args.path)
        report = make_report(sweep, metric=args.metric, use_wandb=not args.no_wandb)
    except (FileNotFoundError, ValueError, KeyError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        log.info("note: %s", note)
    for line in describe(report):
        log.info(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
