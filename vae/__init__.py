"""β-VAE experiments on MNIST: model, data, training and logging."""

import warnings

# Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates; nothing for a user to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
