"""Gaussian noise for a batch, from one generator, one generator per group of rows, or given draws.

Per-group generators make each image's samples independent of what else is in the batch: an image
sampled alone or batched with others (``srdiff-infer --batch``) gets the same noise, hence the same output.
"""
import torch


class Replay:
    """A "generator" that hands out recorded draws in order (e.g. the official implementation's), for ``randn``."""

    def __init__(self, draws):
        self.draws = list(draws)

    def take(self, shape):
        if not self.draws:
            raise ValueError('Replay: no recorded draw left')
        draw = self.draws.pop(0)
        if tuple(draw.shape) != tuple(shape):
            raise ValueError(f'Replay: the next recorded draw is {tuple(draw.shape)}, {tuple(shape)} was asked for')
        return draw


def randn(shape, generator=None, device=None, dtype=None):
    """``torch.randn(shape)``; ``generator`` may be a list of (generator, rows) that together cover the batch, or a
    ``Replay`` of recorded draws."""
    if isinstance(generator, Replay):
        return generator.take(shape).to(device=device, dtype=dtype)
    if isinstance(generator, (list, tuple)):
        if sum(rows for _, rows in generator) != shape[0]:
            raise ValueError(f'generator groups cover {sum(r for _, r in generator)} rows of a batch of {shape[0]}')
        return torch.cat([torch.randn((rows, *shape[1:]), generator=g, device=device, dtype=dtype)
                          for g, rows in generator])
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def noise_source(generator=None, noises=None):
    """The ``noise(k, like)`` a sampler draws its k-th noise from: ``noises[k]`` when given (e.g. the
    official implementation's draws), else fresh from ``generator`` (see ``randn``)."""
    if noises is not None:
        return lambda k, like: noises[k]
    return lambda k, like: randn(like.shape, generator, like.device, like.dtype)
