"""The hand-written baseline of the training benchmark: plain torch DDP (gloo, one process per worker) over the
same model, data, batch size and validation pass as the platform's tabular loop, with no Ray and no checkpoints.

    python -m bench.ddp_baseline ARRAYS.npz SPEC.json --workers 2 --epochs 8 --batch-size 128

Prints one JSON line: the wall time of every epoch (train + validation, measured on rank 0).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from train_jobs.templates.tabular_mlp import TabularSpec, build_model

SEED = 0


def worker(rank: int, args: argparse.Namespace, port: int, out: str) -> None:
    # The same conditions Ray gives its workers: one intra-op thread per CPU, niceness 15.
    os.nice(15)
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=args.workers)
    spec = TabularSpec.from_dict(json.loads(Path(args.spec).read_text()))
    arrays = np.load(args.arrays)
    x_train, y_train, x_val, y_val = (torch.from_numpy(arrays[k]) for k in ("x_train", "y_train", "x_val", "y_val"))
    torch.manual_seed(SEED)
    dataset = TensorDataset(x_train, y_train)
    sampler = DistributedSampler(dataset, num_replicas=args.workers, rank=rank, shuffle=True)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)
    model = nn.parallel.DistributedDataParallel(build_model(spec))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for epoch in range(args.epochs):
        started = time.perf_counter()
        sampler.set_epoch(epoch)
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            (model(x_val).argmax(dim=1) == y_val).float().mean().item()
        dist.barrier()
        times.append(time.perf_counter() - started)
    if rank == 0:
        Path(out).write_text(json.dumps({"epoch_times_s": times}))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("arrays")
    parser.add_argument("spec")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(args, port, args.out), nprocs=args.workers, join=True)


if __name__ == "__main__":
    main()
