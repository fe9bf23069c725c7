"""Data-parallel gradient averaging: flat buckets, one all-reduce each, same values as per tensor."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist

from imlbench.benchmark.distributed import average_gradients


def _params(shapes, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.zeros(shape, dtype=dtype))
        if shape is not None:
            p.grad = torch.randn(shape, generator=gen).to(dtype)
        params.append(p)
    return params


@pytest.fixture
def one_rank_group(tmp_path):
    """A gloo process group of one rank (all_reduce is the identity) in this process."""
    assert not dist.is_initialized()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()


def test_buckets_by_size_and_dtype_and_gradients_come_back_in_place(one_rank_group):
    params = _params([(3, 4), (5,), (2, 2, 2)]) + _params([(7,)], dtype=torch.float64)
    params[1].grad = None  # a frozen parameter: skipped
    channels_last = torch.nn.Parameter(torch.zeros(1, 3, 2, 2))
    channels_last.grad = torch.randn(1, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    params.append(channels_last)
    before = [None if p.grad is None else p.grad.clone() for p in params]
    assert average_gradients(params, world_size=1) == 2  # float32 and float64
    assert all(b is None and p.grad is None or torch.equal(p.grad, b)
               for p, b in zip(params, before))
    assert channels_last.grad.is_contiguous(memory_format=torch.channels_last)
    # 48 bytes (12 floats) fill a bucket: (3,4) alone, then (2,2,2)+(1,3,2,2), then float64
    assert average_gradients(params, world_size=1, bucket_bytes=48) == 3
    halved = average_gradients(params, world_size=2)  # one rank standing in for two: sum / 2
    assert halved == 2 and torch.equal(params[0].grad, before[0] / 2)


CHILD = textwrap.dedent("""
    import json, sys
    import torch
    import torch.distributed as dist
    from imlbench.benchmark.distributed import average_gradients, context

    ctx = context()
    gen = torch.Generator().manual_seed(ctx.rank)
    shapes = [(64, 3, 3, 3), (64,), (10,), (128, 64), (1,)] * 20
    flat = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    each = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for a, b in zip(flat, each):
        a.grad = torch.randn(a.shape, generator=gen)
        b.grad = a.grad.clone()
    collectives = average_gradients(flat, ctx.world_size, bucket_bytes=256 * 1024)
    for p in each:  # the reference: one all-reduce per tensor
        dist.all_reduce(p.grad)
        p.grad.div_(ctx.world_size)
    same = all(torch.equal(a.grad, b.grad) for a, b in zip(flat, each))
    print(json.dumps({"rank": ctx.rank, "same": same, "collectives": collectives,
                      "tensors": len(shapes)}))
""")


@pytest.mark.slow  # torchrun, two processes
def test_two_ranks_average_exactly_as_per_tensor_all_reduce(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script)]
    proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["rank"] for r in reports) == [0, 1]
    assert all(r["same"] for r in reports)
    assert all(r["collectives"] < r["tensors"] / 10 for r in reports)  # 100 tensors, few buckets
