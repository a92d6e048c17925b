"""Which runs are replicates: the same config but for the seed.

``replicate_of(cfg)`` is a short hash of the job's config with the seed and the keys that only say
where or how a run writes removed; the runs of ``-m beta=1,4 seeds=3`` get two ids, three runs each.
It lands in metrics.json's params and in the W&B config (W&B's "group by" shows replicates together).
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from protocol import TRIAL_KEY

# Not the configuration: the seed(s), where the run writes, the sweeper's trial identity, and
# settings that change how a run is shown or resumed, not what it trains.
NOT_CONFIGURATION = ("seed", "seeds", "paths", "hydra", TRIAL_KEY, "ckpt_path", "progress_bar", "torch_threads",
                     "jobs_per_gpu")


def replicate_of(cfg: DictConfig) -> str:
    # Unresolved: ${paths.output_dir} differs per job, its text does not.
    node = OmegaConf.to_container(cfg, resolve=False)
    for key in NOT_CONFIGURATION:
        node.pop(key, None)
    text = json.dumps(node, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]
