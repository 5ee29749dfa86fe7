"""Shared test setup: one intra-op thread. The tests use tiny models, for which OpenMP threads only
add overhead, and on a busy 2-core machine spin-waiting OpenMP threads make them ~100x slower."""

import torch

torch.set_num_threads(1)
