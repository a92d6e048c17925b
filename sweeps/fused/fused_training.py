"""The training loop of a fused group: K members stacked (sweeps/fused/stacked_vae.py), one loop.

It does for all members at once what a solo run's Trainer does for one, on the same steps:
training metrics every ``trainer.log_every_n_steps``, figures every ImageLogger ``every_n_steps``,
validation every ``trainer.val_check_interval`` and at the end (then the sweeper's report, which
may prune a member), a checkpoint after each validation, the test at the end. Evaluation is batched
across members (sweeps/fused/stacked_evaluation.py). A member that diverges or is pruned is removed
from the stack and ended at once; the others go on. On Ctrl-C every open member is recorded as
failed (interrupted) and the interrupt goes on: checkpoints of the last validation remain, and a
rerun with ``ckpt_path=last`` resumes every member from them.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import torch
from omegaconf import DictConfig

from vae.errors import DivergedError
from sweeps.fused import member_checkpoint, stacked_evaluation
from vae.speed.batch_groups import group_size
from sweeps.fused.fused_run import FusedMember
from sweeps.fused.member_batches import MemberBatches
from sweeps.fused.stacked_vae import StackedVAE

log = logging.getLogger(__name__)

EVAL_SEED = 0    # evaluation noise: its own generator, never a member's training stream
PROBE_STEPS = 8  # steps timed on each thread count when the launcher's torch_threads is null


class ThreadProbe:
    """Chooses the group's torch threads by timing its own first steps: PROBE_STEPS on 1 thread,
    PROBE_STEPS on every usable core, then the faster. Why measured and not fixed: on idle cores
    a stack trains faster on several threads, but when another process takes a core, threads can
    make small matmuls many times slower."""

    def __init__(self, cores: int):
        self.plan = [1, cores]
        self.times: dict[int, float] = {}
        self.chosen: int | None = None if cores > 1 else 1
        self._start: float | None = None
        self._steps = 0

    def before(self) -> None:
        if self.chosen is not None:
            return
        if self._steps == 0:
            torch.set_num_threads(self.plan[len(self.times)])
            self._start = time.perf_counter()

    def after(self) -> None:
        if self.chosen is not None:
            return
        self._steps += 1
        elapsed = time.perf_counter() - self._start
        # A candidate already slower than a finished one is stopped there (as its full time).
        slower = bool(self.times) and elapsed > min(self.times.values())
        if self._steps == PROBE_STEPS or slower:
            self.times[self.plan[len(self.times)]] = elapsed * PROBE_STEPS / self._steps
            self._steps = 0
            if len(self.times) == len(self.plan):
                self.chosen = min(self.times, key=self.times.get)
                torch.set_num_threads(self.chosen)
                log.info("fused group: %s; using %d thread(s)", ", ".join(
                    f"{n} thread(s) {1000 * t / PROBE_STEPS:.0f} ms/step" for n, t in self.times.items()), self.chosen)


def _schedule(cfg: DictConfig, member: FusedMember) -> dict:
    max_steps = int(cfg.trainer.max_steps)
    interval = cfg.trainer.val_check_interval
    return {"max_steps": max_steps, "val": min(int(interval), max_steps),
            "log": int(cfg.trainer.log_every_n_steps),
            "images": member.images.every_n_steps if member.images is not None else 0}


def train_group(members: Sequence[FusedMember], datamodule, device: torch.device,
                on_return: Callable[[FusedMember, object], None], probe: ThreadProbe | None = None) -> None:
    """Train the members (all prepared, all at the same resume step) to the end; each member's
    JobReturn is handed to ``on_return`` as soon as it ends. ``probe``: choose the threads."""
    cfg = members[0].cfg
    plan = _schedule(cfg, members[0])
    start = members[0].resume["step"] if members[0].resume else 0
    stack = StackedVAE.from_members(
        [m.model for m in members], [m.generator for m in members], member_ids=list(range(len(members))),
        optimizer_states=[m.resume["optimizer_state"] for m in members] if start else None, device=device)
    train = datamodule.split("train")
    # The training images go to the device once, in their stored dtype (uint8 dSprites stays a
    # quarter the size of floats; on the CPU it stays the shared mapped copy), gathered there per step.
    batches = MemberBatches(train.images.to(device), datamodule.batch_size,
                            seeds=[m.cfg.seed for m in members], generators=stack.generators,
                            binarize=datamodule.binarizes, to_float=datamodule.as_float)
    val_images = datamodule.as_float(datamodule.split("val").images).to(device)
    eval_generator = torch.Generator(device).manual_seed(EVAL_SEED)
    # A solo run's loop counters at a checkpoint depend on its batch-group size (member_checkpoint).
    group = group_size(int(cfg.speed.batches_per_fetch),
                       {k: cfg.trainer.get(k) for k in ("max_steps", "val_check_interval", "log_every_n_steps")},
                       [m.images for m in members[:1] if m.images is not None])
    batches_per_pass = len(train) // datamodule.batch_size        # drop_last, as TensorBatches
    per_epoch = max(1, -(-batches_per_pass // group))                # Lightning epoch: len(TensorBatches)

    def remove(positions: list[int]) -> None:
        keep = [i for i in range(len(stack)) if i not in positions]
        stack.remove_members(keep)
        batches.remove_members(keep)

    step = start
    try:
        for step in range(start, plan["max_steps"]):
            if probe is not None and step > start:      # the first step pays one-off allocations
                probe.before()
            result = stack.train_step(batches.batch(step))
            if probe is not None and step > start:
                probe.after()
            if result.diverged:
                batches.remove_members(result.kept)
                for pos, member_id in enumerate(result.member_ids):
                    if member_id in result.diverged:
                        m = members[member_id]
                        on_return(m, m.fail(DivergedError(
                            f"loss became {result.loss[pos].item()} at step {step} (beta={m.model.beta}, "
                            f"lr={m.model.lr}); lower model.optimizer.lr or beta, or add trainer.gradient_clip_val=1")))
            if not len(stack):
                return
            done = step + 1
            if done % plan["log"] == 0:
                for pos, member_id in enumerate(result.member_ids):
                    if member_id in stack.member_ids:
                        members[member_id].log({"train/loss": float(result.loss[pos]),
                                                "train/distortion": float(result.distortion[pos]),
                                                "train/rate": float(result.rate[pos])}, step)
            if plan["images"] and done % plan["images"] == 0 and done < plan["max_steps"]:
                for pos, member_id in enumerate(stack.member_ids):
                    members[member_id].figures(stack.member_state_dict(pos), datamodule, done, final=False)
            if done % plan["val"] == 0 or done == plan["max_steps"]:
                metrics = stacked_evaluation.validate(stack, val_images, generator=eval_generator)
                pruned = []
                for pos, member_id in enumerate(list(stack.member_ids)):
                    try:
                        members[member_id].validated({k: float(v[pos]) for k, v in metrics.items()}, done)
                    except Exception as exc:   # optuna.TrialPruned, or the sweeper's storage failing
                        on_return(members[member_id], members[member_id].fail(exc))
                        pruned.append(pos)
                if pruned:
                    remove(pruned)
                    if not len(stack):
                        return
                epoch, loops = member_checkpoint.loop_states(done, group, per_epoch)
                for pos, member_id in enumerate(stack.member_ids):
                    members[member_id].save_checkpoint(done, epoch, loops, stack.member_state_dict(pos),
                                                       stack.member_optimizer_state_dict(pos))
        final = plan["max_steps"]
        test_images = datamodule.as_float(datamodule.split("test").images).to(device)
        results = stacked_evaluation.test(stack, test_images, int(cfg.eval.iwae_samples),
                                          cfg.eval.nll_images, generator=eval_generator)
        for pos, member_id in enumerate(stack.member_ids):
            m = members[member_id]
            on_return(m, m.complete(results[pos], final, datamodule, stack.member_state_dict(pos)))
    except BaseException as exc:
        # Every member still open ends with this error (a KeyboardInterrupt: interrupted); a bug
        # in the loop fails the group's open members, not the sweep.
        for member in members:
            if not member.done:
                on_return(member, member.fail(exc))
        if not isinstance(exc, Exception):
            raise
        log.error("fused group failed at step %d: %s: %s", step, type(exc).__name__, exc)
