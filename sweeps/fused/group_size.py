"""How many members of a fused group train as one stack on a GPU when ``hydra.launcher.fuse`` is not
given: as many as the device's free memory holds. Pure arithmetic, tested with given numbers; the
caller reads the free memory (torch.cuda.mem_get_info) and the members' sizes.

Why an estimate and not a trial allocation: a stack that does not fit fails on its first step or,
worse, its first test pass, minutes in; the estimate errs large (activations counted three times)
and only a fraction of the free memory is planned for.
"""

from __future__ import annotations

FLOAT_BYTES = 4
FRACTION = 0.8   # of the free memory; the rest: the allocator's fragmentation, cuBLAS workspaces


def member_bytes(parameters: int, batch_size: int, activations_per_image: int) -> int:
    """Device memory one member needs while training: its parameters with their gradients and
    Adam's two moments (4 floats each), and per image of its batch its activations, their
    gradients and the saved inputs of the backward pass (3 floats per unit)."""
    return FLOAT_BYTES * (4 * parameters + 3 * batch_size * activations_per_image)


def members_that_fit(free_bytes: int, shared_bytes: int, per_member_bytes: int, fraction: float = FRACTION) -> int:
    """The most members of one stack on a device with ``free_bytes`` free, once ``shared_bytes``
    (the data on the device, evaluation's chunk buffers) are taken; at least 1."""
    if per_member_bytes <= 0:
        raise ValueError(f"per_member_bytes={per_member_bytes} must be > 0")
    return max(1, int((free_bytes * fraction - shared_bytes) // per_member_bytes))


def split_evenly(count: int, most: int) -> list[int]:
    """Sizes of the fewest groups of at most ``most`` that hold ``count`` members, as even as can
    be (100 members, at most 40: 34/33/33, not 40/40/20)."""
    groups = -(-count // max(1, most))
    return [count // groups + (i < count % groups) for i in range(groups)] if count else []
