"""PyTorch reference for `cargo xtask bench`: the coursework Mixer, same sizes, Adam, batch 256.

Never needed by the tests or CI. Usage (after `pip install torch numpy`):

    python3 benches/reference/mixer.py [--threads 2] [--steps 20] [--repeats 5] [--epoch]

Prints training images/s (median of the repetitions, like the Rust bench) and, with --epoch,
the wall time of one full training epoch over the real 60,000 images.
"""

import argparse
import gzip
import statistics
import struct
import time

import numpy as np
import torch
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"


class Block(nn.Module):
    def __init__(self, patches, dim, token_hidden, channel_hidden):
        super().__init__()
        self.w1 = nn.Linear(patches, token_hidden)
        self.w2 = nn.Linear(token_hidden, patches)
        self.w3 = nn.Linear(dim, channel_hidden)
        self.w4 = nn.Linear(channel_hidden, dim)

    def forward(self, x):  # [batch, patches, dim]
        o1 = self.w2(torch.relu(self.w1(x.transpose(1, 2)))).transpose(1, 2)
        return self.w4(torch.relu(self.w3(o1)))


class Mixer(nn.Module):
    def __init__(self, k=7, dim=128, token_hidden=64, channel_hidden=256, depth=2):
        super().__init__()
        self.k = k
        patches = (28 // k) ** 2
        self.stem = nn.Linear(k * k, dim)
        self.blocks = nn.Sequential(
            *[Block(patches, dim, token_hidden, channel_hidden) for _ in range(depth)]
        )
        self.head = nn.Linear(dim, 10)

    def forward(self, images):  # [batch, 28, 28]
        b, k = images.shape[0], self.k
        p = images.reshape(b, 28 // k, k, 28 // k, k).transpose(2, 3).reshape(b, -1, k * k)
        return self.head(self.blocks(self.stem(p)).mean(1))


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 28, 28)
    return np.frombuffer(data, np.uint8, offset=8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epoch", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)

    images = (idx(f"{DATA}/train-images-idx3-ubyte.gz").astype(np.float32) / 255 - 0.2860) / 0.3530
    labels = idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels)

    net = Mixer()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    bs = args.batch_size

    def step(i):
        lo = (i * bs) % (len(x_all) - bs)
        x, y = x_all[lo : lo + bs], y_all[lo : lo + bs]
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for i in range(3):
        step(i)
    rates = []
    for r in range(args.repeats):
        start = time.perf_counter()
        for i in range(args.steps):
            step(r * args.steps + i)
        rates.append(args.steps * bs / (time.perf_counter() - start))
    print(
        f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, batch {bs}: "
        f"training {statistics.median(rates):.0f} images/s (median of {args.repeats})"
    )

    if args.epoch:
        perm = torch.randperm(len(x_all))
        start = time.perf_counter()
        for lo in range(0, len(x_all), bs):
            idx_ = perm[lo : lo + bs]
            opt.zero_grad()
            loss_fn(net(x_all[idx_]), y_all[idx_]).backward()
            opt.step()
        print(f"one epoch of {len(x_all)} images: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
