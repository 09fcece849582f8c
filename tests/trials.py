"""Helpers the task tests share: seeded generators and batch comparison."""

import torch


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def differs(a, b):
    """True when two batches differ in any of inputs, targets or mask."""
    mine, theirs = (a.inputs, a.targets, a.mask), (b.inputs, b.targets, b.mask)
    pairs = zip(mine, theirs, strict=True)
    return any(x.shape != y.shape or not torch.equal(x, y) for x, y in pairs)
