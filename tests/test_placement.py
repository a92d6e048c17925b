"""One node, many GPUs, decided on the CPU: which worker gets which GPU (protocol/placement.py), the
worker numbers processes claim (protocol/worker_slot.py), how many joblib workers a GPU sweep gets,
and how many fused members fit a GPU's memory (sweeps/fused/group_size.py), with the counts given."""

import subprocess
import sys
from collections import Counter

import pytest
from omegaconf import OmegaConf

from protocol.placement import device_index, gpu_workers, placed_devices, wants_one_gpu
from protocol.worker_slot import worker_slot
from sweeps.fused.group_size import member_bytes, members_that_fit, split_evenly
from sweeps.workers.launcher_workers import gpu_worker_count, limit_workers
from test_workers import make_joblib_launcher

ONE_GPU = {"accelerator": "gpu", "devices": 1}


@pytest.mark.parametrize("gpus, jobs_per_gpu", [(1, 1), (2, 1), (4, 2), (8, 3), (3, 4)])
def test_every_gpu_gets_exactly_jobs_per_gpu_workers(gpus, jobs_per_gpu):
    workers = gpu_workers(gpus, jobs_per_gpu)
    assert workers == gpus * jobs_per_gpu
    load = Counter(device_index(w, gpus, jobs_per_gpu) for w in range(workers))
    assert load == {gpu: jobs_per_gpu for gpu in range(gpus)}


def test_fewer_workers_than_slots_still_spread_over_every_gpu():
    # 3 jobs on 4 GPUs with jobs_per_gpu=2: three GPUs, one job each, not two jobs on GPU 0
    assert [device_index(w, 4, 2) for w in range(3)] == [0, 1, 2]
    assert [device_index(w, 2, 3) for w in range(6)] == [0, 1, 0, 1, 0, 1]


def test_placement_applies_only_to_one_gpu_jobs_on_a_machine_with_several():
    assert placed_devices(ONE_GPU, 5, gpus=4, jobs_per_gpu=2) == [1]
    assert placed_devices({"accelerator": "auto", "devices": "1"}, 2, gpus=4, jobs_per_gpu=1) == [2]
    assert placed_devices({"accelerator": "cpu", "devices": 1}, 5, gpus=4, jobs_per_gpu=1) is None  # CPU: as today
    assert placed_devices(ONE_GPU, 3, gpus=1, jobs_per_gpu=4) is None              # one GPU: as configured
    assert placed_devices(ONE_GPU, 3, gpus=0, jobs_per_gpu=1) is None
    assert placed_devices({"accelerator": "gpu", "devices": 2, "strategy": "ddp"}, 1, 4, 1) is None
    assert not wants_one_gpu({"accelerator": "gpu", "devices": 1, "strategy": "ddp"})
    with pytest.raises(ValueError):
        device_index(0, gpus=2, jobs_per_gpu=0)


CLAIM = "import sys, time; from protocol.worker_slot import worker_slot; print(worker_slot(sys.argv[1]), flush=True); time.sleep(float(sys.argv[2]))"


def test_live_processes_claim_distinct_numbers_and_a_dead_ones_number_is_reused(tmp_path):
    folder = tmp_path / ".workers"
    mine = worker_slot(folder)
    assert worker_slot(folder) == mine == 0                 # claimed once, kept
    others = [subprocess.Popen([sys.executable, "-c", CLAIM, str(folder), "3"], stdout=subprocess.PIPE, text=True)
              for _ in range(2)]
    numbers = [int(p.stdout.readline()) for p in others]
    assert sorted(numbers) == [1, 2]                        # while all three live: 0, 1, 2
    others[0].kill()
    others[0].wait()
    again = subprocess.run([sys.executable, "-c", CLAIM, str(folder), "0"], capture_output=True, text=True, timeout=60)
    others[1].kill()
    others[1].wait()
    assert int(again.stdout) == numbers[0]                  # the dead worker's number, taken by its replacement


def test_a_gpu_sweep_gets_gpus_times_jobs_per_gpu_joblib_workers():
    launcher = make_joblib_launcher(n_jobs=-1)
    limit_workers(launcher, jobs=100, gpu_workers=gpu_workers(4, 2))
    assert launcher.joblib["n_jobs"] == 8
    launcher = make_joblib_launcher(n_jobs=-1)
    limit_workers(launcher, jobs=3, gpu_workers=8)           # never more workers than jobs
    assert launcher.joblib["n_jobs"] == 3
    launcher = make_joblib_launcher(n_jobs=5)
    limit_workers(launcher, jobs=100, gpu_workers=8)         # an explicit count stands
    assert launcher.joblib["n_jobs"] == 5


def test_cpu_jobs_and_a_machine_without_gpus_keep_one_worker_per_core():
    cpu = OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 1}, "jobs_per_gpu": 4})
    assert gpu_worker_count(cpu) is None
    gpu = OmegaConf.create({"trainer": ONE_GPU, "jobs_per_gpu": 4})
    assert gpu_worker_count(gpu) is None                     # this machine has no GPU (torch's own count: 0)


def test_fused_members_that_fit_a_gpu_follow_its_free_memory():
    # the seed MLP (784-100-100-2×10 / 10-100-100-784): 181,004 parameters, batch 64
    seed_mlp = member_bytes(parameters=181_004, batch_size=64, activations_per_image=784 + 100 + 100 + 20 + 100 + 100 + 784)
    assert seed_mlp == 4 * (4 * 181_004 + 3 * 64 * 1988)    # ~4.4 MB a member
    gib = 2 ** 30
    data = 220 * 2 ** 20                                     # MNIST's splits as floats
    on_h200 = members_that_fit(free_bytes=139 * gib, shared_bytes=data + gib, per_member_bytes=seed_mlp)
    on_small = members_that_fit(free_bytes=8 * gib, shared_bytes=data + gib, per_member_bytes=seed_mlp)
    assert on_h200 > 20_000 and 1000 < on_small < on_h200 / 10
    assert members_that_fit(free_bytes=gib, shared_bytes=2 * gib, per_member_bytes=seed_mlp) == 1   # at least one
    assert split_evenly(100, 40) == [34, 33, 33] and split_evenly(64, 1000) == [64] and split_evenly(0, 5) == []
    assert sum(split_evenly(1000, on_small)) == 1000 and max(split_evenly(1000, 7)) <= 7


def test_a_fused_group_on_the_cpu_trains_where_it_did_and_claims_no_worker_number(tmp_path):
    import torch

    from sweeps.fused.fused_device import training_device

    cfg = OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 1}, "jobs_per_gpu": 2})
    assert training_device(cfg, tmp_path) == torch.device("cpu")
    assert not (tmp_path / ".workers").exists()
