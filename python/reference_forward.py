"""The Mixer's forward pass written from the equations in numpy alone (no Burn, no PyTorch),
on a model exported with `cargo xtask export`.

    python3 python/reference_forward.py MODEL.safetensors --data DIR [--count 200]
        [--compare INFER.jsonl] [--tolerance 1e-4]

Reads the model's configuration and input normalisation from the file's metadata, computes the
logits of the first --count test images (t10k-images-idx3-ubyte[.gz] in --data), prints the
test accuracy on them, and with --compare checks them against `cargo xtask infer --json`'s
lines for the same items: every logit within --tolerance and the same predicted class. Exit
status 1 when they disagree. Needs `numpy` and `safetensors` (python/requirements.txt).
"""

import argparse
import gzip
import json
import math
import os
import struct
import sys

import numpy as np
from safetensors import safe_open


def idx(path):
    """An IDX file (raw or gzip'd) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols)
    return np.frombuffer(data, np.uint8, offset=8)


def find(data, name):
    for candidate in (name + ".gz", name):
        path = os.path.join(data, candidate)
        if os.path.exists(path):
            return path
    sys.exit(f"{data}: no {name}[.gz]")


def linear(x, t, name):
    """x W^T + b, with W in PyTorch's [out, in] layout."""
    return x @ t[name + ".weight"].T + t[name + ".bias"]


def layer_norm(x, t, name, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * t[name + ".weight"] + t[name + ".bias"]


def forward(images, t, m):
    """Logits [n, classes] of images [n, 28, 28] (normalised), as the spec writes the model."""
    relu = lambda h: np.maximum(h, 0.0)
    erf = np.vectorize(math.erf)
    gelu = lambda h: 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
    g = gelu if m["activation"] == "gelu" else relu
    k = m["patch_size"]
    s = m["patch_stride"] or k
    per_side = (28 - k) // s + 1
    # Patches row-major over the grid, pixels row-major within a patch: [n, N_p, K*K].
    patches = np.stack(
        [
            images[:, r * s : r * s + k, c * s : c * s + k].reshape(len(images), k * k)
            for r in range(per_side)
            for c in range(per_side)
        ],
        axis=1,
    )
    x = linear(patches, t, "stem.linear")  # X: [n, N_p, d]
    for i in range(m["depth"]):
        b = f"blocks.{i}"
        h = layer_norm(x, t, b + ".norm1") if m["layer_norm"] else x
        # O1 = g(X^T W1) W2, then O1 <- O1^T
        o1 = linear(g(linear(h.transpose(0, 2, 1), t, b + ".w1")), t, b + ".w2").transpose(0, 2, 1)
        if m["residual"]:
            o1 = x + o1
        h = layer_norm(o1, t, b + ".norm2") if m["layer_norm"] else o1
        # O2 = g(O1 W3) W4
        o2 = linear(g(linear(h, t, b + ".w3")), t, b + ".w4")
        x = o1 + o2 if m["residual"] else o2
    if m["layer_norm"]:
        x = layer_norm(x, t, "norm")
    return linear(x.mean(axis=1), t, "head")  # mean over patches, then softmax regression


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--compare")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    with safe_open(args.model, framework="numpy") as f:
        meta = f.metadata()
        tensors = {name: f.get_tensor(name).astype(np.float64) for name in f.keys()}
    model = json.loads(meta["fashion_mixer.config"])["model"]
    norm = json.loads(meta["fashion_mixer.normalization"])
    images = idx(find(args.data, "t10k-images-idx3-ubyte"))[: args.count]
    labels = idx(find(args.data, "t10k-labels-idx1-ubyte"))[: args.count]
    x = (images.astype(np.float64) / 255.0 - norm["mean"]) / norm["std"]
    logits = forward(x, tensors, model)
    predicted = logits.argmax(axis=1)
    print(
        f"numpy reference: {len(images)} test images, accuracy "
        f"{100.0 * (predicted == labels).mean():.2f}%, {len(tensors)} tensors"
    )
    if not args.compare:
        return
    if not compare(args.compare, logits, predicted, args.tolerance):
        sys.exit(1)


def compare(path, logits, predicted, tolerance):
    """Whether `logits` (one row per test item, from item 0) are within `tolerance` of
    `cargo xtask infer --json`'s lines in `path`, with the same predicted classes; prints how
    far apart they are."""
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    by_index = {int(line["source"][5:-1]): line for line in lines if line["source"].startswith("test[")}
    missing = [i for i in range(len(logits)) if i not in by_index]
    if missing:
        sys.exit(f"{path}: no line for test items {missing[:5]}...")
    theirs = np.array([by_index[i]["logits"] for i in range(len(logits))], dtype=np.float64)
    worst = float(np.abs(theirs - logits).max())
    same = int((theirs.argmax(axis=1) == predicted).sum())
    print(f"against {path}: max |logit difference| {worst:.2e}, same class {same}/{len(logits)}")
    return worst <= tolerance and same == len(logits)


if __name__ == "__main__":
    main()
