"""PyTorch reference for `cargo xtask bench`: the same Mixer, optimizer and loss as a training
configuration (`--preset coursework|teacher|best` or `--config PATH`, as `cargo xtask bench` takes
them; `best` is `teacher`'s model and optimizer: distillation and augmentation are not timed here).

Never needed by the tests or CI. Usage (after `pip install torch numpy`):

    python3 benches/reference/mixer.py [--preset best] [--config run/config.json]
        [--threads 2] [--steps 20] [--repeats 5] [--epoch]

Prints training images/s (median of the repetitions, like the Rust bench), inference at batch 1
(ms) and batch 1024 (images/s), and with --epoch the wall time of one training epoch over the
60,000 images. The module's parameter names are the ones `cargo xtask export` writes, so
`Mixer(config).load_state_dict(safetensors.torch.load_file("model.safetensors"))` loads an
exported model (see README, "Use the model elsewhere").
"""

import argparse
import copy
import gzip
import json
import statistics
import struct
import time

import numpy as np
import torch
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530

# `TrainingConfig::new()` and `TrainingConfig::teacher()` (crates/train/src/config.rs): the fields
# this script uses (`best()` has the teacher's).
MODEL = dict(
    patch_size=7, patch_stride=None, dim=128, token_hidden=64, channel_hidden=256, depth=2,
    num_classes=10, residual=False, layer_norm=False, activation="relu", dropout=0.0,
)
PRESETS = {
    "coursework": dict(
        model=MODEL, optimizer="adam", lr=1e-3, weight_decay=1e-4, batch_size=256,
        label_smoothing=0.0,
    ),
    "teacher": dict(
        model=dict(MODEL, patch_size=4, depth=4, residual=True, layer_norm=True),
        optimizer="adamw", lr=2e-3, weight_decay=0.05, batch_size=128, label_smoothing=0.1,
    ),
}
PRESETS["best"] = PRESETS["teacher"]


def merged(base, given):
    out = copy.deepcopy(base)
    for key, value in given.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and key in out else value
    return out


class Block(nn.Module):
    """O1 = g(X^T W1) W2, O1 <- O1^T, O2 = g(O1 W3) W4; options: LayerNorm before each half,
    residuals around each, GELU for g, dropout on the hidden units."""

    def __init__(self, patches, m):
        super().__init__()
        self.w1 = nn.Linear(patches, m["token_hidden"])
        self.w2 = nn.Linear(m["token_hidden"], patches)
        self.w3 = nn.Linear(m["dim"], m["channel_hidden"])
        self.w4 = nn.Linear(m["channel_hidden"], m["dim"])
        self.norm1 = nn.LayerNorm(m["dim"]) if m["layer_norm"] else nn.Identity()
        self.norm2 = nn.LayerNorm(m["dim"]) if m["layer_norm"] else nn.Identity()
        self.g = nn.GELU() if m["activation"] == "gelu" else nn.ReLU()
        self.drop = nn.Dropout(m["dropout"])
        self.residual = m["residual"]

    def hidden(self, h):
        return self.drop(self.g(h))

    def forward(self, x):  # [batch, patches, dim]
        xt = self.norm1(x).transpose(1, 2)
        o1 = self.w2(self.hidden(self.w1(xt))).transpose(1, 2)
        o1 = x + o1 if self.residual else o1
        o2 = self.w4(self.hidden(self.w3(self.norm2(o1))))
        return o1 + o2 if self.residual else o2


class Stem(nn.Module):
    """KxK patches (row-major over the grid, pixels row-major within a patch), each mapped to
    `dim` features by one linear layer."""

    def __init__(self, m):
        super().__init__()
        self.k = m["patch_size"]
        self.stride = m["patch_stride"] or self.k
        self.linear = nn.Linear(self.k * self.k, m["dim"])

    def patches(self, images):  # [batch, 28, 28] -> [batch, patches, k*k]
        p = images.unfold(1, self.k, self.stride).unfold(2, self.k, self.stride)
        return p.reshape(images.shape[0], -1, self.k * self.k)

    def forward(self, images):
        return self.linear(self.patches(images))


class Mixer(nn.Module):
    def __init__(self, model_config):
        super().__init__()
        m = merged(MODEL, model_config)
        per_side = (28 - m["patch_size"]) // (m["patch_stride"] or m["patch_size"]) + 1
        self.stem = Stem(m)
        self.blocks = nn.ModuleList([Block(per_side * per_side, m) for _ in range(m["depth"])])
        self.norm = nn.LayerNorm(m["dim"]) if m["layer_norm"] else None
        self.head = nn.Linear(m["dim"], m["num_classes"])

    def forward(self, images):  # [batch, 28, 28], normalised -> logits [batch, classes]
        x = self.stem(images)
        for block in self.blocks:
            x = block(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.head(x.mean(1))


def optimizer(config, params):
    lr, wd = config["lr"], config["weight_decay"]
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.get("momentum", 0.0), weight_decay=wd)
    if config["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, eps=1e-8)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd, eps=1e-8)


def train_epoch(net, opt, loss_fn, x, y, batch_size):
    """One pass over (x, y) in a random order."""
    net.train()
    perm = torch.randperm(len(x))
    for lo in range(0, len(x), batch_size):
        i = perm[lo : lo + batch_size]
        opt.zero_grad()
        loss_fn(net(x[i]), y[i]).backward()
        opt.step()


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 28, 28)
    return np.frombuffer(data, np.uint8, offset=8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="coursework")
    ap.add_argument("--config", help="a JSON TrainingConfig (all or some fields) over the preset")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epoch", action="store_true")
    args = ap.parse_args()
    config = PRESETS[args.preset]
    if args.config:
        with open(args.config) as f:
            config = merged(config, json.load(f))
    if args.batch_size:
        config["batch_size"] = args.batch_size
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(42)

    images = (idx(f"{DATA}/train-images-idx3-ubyte.gz").astype(np.float32) / 255 - MEAN) / STD
    labels = idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels)

    net = Mixer(config["model"])
    opt = optimizer(config, net.parameters())
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.get("label_smoothing", 0.0))
    bs = config["batch_size"]

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

    net.eval()
    with torch.no_grad():
        net(x_all[:1024])
        batch1 = []
        for i in range(50):
            start = time.perf_counter()
            net(x_all[i : i + 1])
            batch1.append((time.perf_counter() - start) * 1e3)
        batch1024 = []
        for r in range(args.repeats):
            start = time.perf_counter()
            net(x_all[r * 1024 : (r + 1) * 1024])
            batch1024.append(1024 / (time.perf_counter() - start))
    net.train()
    print(
        f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, {args.preset}, "
        f"batch {bs}: training {statistics.median(rates):.0f} images/s (median of "
        f"{args.repeats}); inference: batch 1 {statistics.median(batch1):.2f} ms; "
        f"batch 1024 {statistics.median(batch1024):.0f} images/s"
    )

    if args.epoch:
        start = time.perf_counter()
        train_epoch(net, opt, loss_fn, x_all, y_all, bs)
        print(f"one epoch of {len(x_all)} images: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
