"""Multi-process evaluation with ``torchrun`` (torch.distributed): shard, evaluate, merge exactly.

``torchrun --nproc_per_node=N -m imlbench run ...`` starts N copies; each reads ``RANK`` /
``WORLD_SIZE`` from the environment. A single cell is split by samples: rank r takes samples
``r, r+N, r+2N, …`` (disjoint, covering, no padding, so nothing is counted twice and no tail is
dropped), and the ranks' metric *states* are gathered and merged with ``MetricSuite.merge`` —
the same code that makes "two shards merged = one pass" true on one process. A sweep instead
spreads whole cells over ranks (``shard`` of the cell list); each cell file lands in the shared store.

Without torchrun (no ``WORLD_SIZE`` in the environment) everything is a no-op.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

from imlbench.metrics import MetricSuite

T = TypeVar("T")

# Rank 0 may train a checkpoint or build the synthetic data while the others wait at a barrier.
_TIMEOUT = datetime.timedelta(hours=6)
GRAD_BUCKET_BYTES = 25 * 2**20
"""Gradients are averaged in flat buckets of about this size (DDP's default bucket size)."""


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (e.g. one run id for all the records of a run)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, items: list[T]) -> list[T]:
        """Every rank's ``items`` concatenated in rank order (on every rank)."""
        if not self.enabled:
            return items
        parts: list[list[T] | None] = [None] * self.world_size
        dist.all_gather_object(parts, items)
        return [x for part in parts for x in part]

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share: every ``world_size``-th item from ``rank`` (strided, no padding)."""
        return list(items[self.rank::self.world_size])

    def merge_suite(self, suite: MetricSuite) -> MetricSuite:
        """Every rank's metric states merged in rank order; returns a new suite on every rank."""
        if not self.enabled:
            return suite
        states: list[dict | None] = [None] * self.world_size
        dist.all_gather_object(states, suite.state_dict())
        merged = MetricSuite(suite.names, **suite.options)
        for state in states:
            part = MetricSuite(suite.names, **suite.options)
            part.load_state_dict(state)
            merged.merge(part)
        return merged


def context() -> DistContext:
    """The process group of this run, initialised on first call when launched by torchrun.

    Backend: NCCL when CUDA is available (each rank uses GPU ``LOCAL_RANK``), else gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend, timeout=_TIMEOUT)
    return DistContext(rank, world, local)


def device_for(ctx: DistContext, device: str) -> str:
    """``auto``/``cuda`` under torchrun means this rank's own GPU."""
    if ctx.enabled and torch.cuda.is_available() and device in ("auto", "cuda"):
        return f"cuda:{ctx.local_rank}"
    return device


def average_gradients(params: Sequence[torch.nn.Parameter], world_size: int,
                      bucket_bytes: int = GRAD_BUCKET_BYTES) -> int:
    """Mean of every ``p.grad`` over the ranks, in place; returns the number of collectives.

    The gradients (those present: frozen parts have none, on every rank alike) are copied into
    flat buffers of one dtype and device, about ``bucket_bytes`` each, and each buffer is
    all-reduced once — a handful of collectives per step instead of one per parameter tensor.
    A sum of the same values in the same rank order, so the result equals the per-tensor one.
    This runs after backward (no overlap with it): unlike ``DistributedDataParallel`` it needs
    nothing from the method's ``forward``, so custom ``loss()``/stages/frozen parts just work.
    """
    buckets: list[list[torch.Tensor]] = []
    open_buckets: dict[tuple[torch.dtype, torch.device], tuple[list[torch.Tensor], list[int]]] = {}
    for p in params:
        grad = p.grad
        if grad is None:
            continue
        key = (grad.dtype, grad.device)
        if key not in open_buckets:
            open_buckets[key] = ([], [0])
            buckets.append(open_buckets[key][0])
        bucket, size = open_buckets[key]
        bucket.append(grad)
        size[0] += grad.numel() * grad.element_size()
        if size[0] >= bucket_bytes:
            del open_buckets[key]  # full: the next gradient of this kind starts a new one
    for bucket in buckets:
        flat = torch.cat([grad.reshape(-1) for grad in bucket])
        dist.all_reduce(flat)
        flat.div_(world_size)
        offset = 0
        for grad in bucket:
            grad.copy_(flat[offset:offset + grad.numel()].view(grad.shape))
            offset += grad.numel()
    return len(buckets)

