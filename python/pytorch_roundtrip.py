"""The PyTorch round trip, run by hand (PyTorch is too large for CI):

    python3 python/pytorch_roundtrip.py check MODEL.safetensors
        loads a `cargo xtask export` file into benches/reference/mixer.py's `Mixer` with
        `load_state_dict(strict=True)` and prints its test accuracy (compare `cargo xtask eval`);
    python3 python/pytorch_roundtrip.py train OUT.safetensors [--preset coursework] [--epochs 2]
        trains that module in PyTorch, prints its test accuracy, and saves its `state_dict` with
        the metadata `cargo xtask import` reads (then `cargo xtask import OUT.safetensors
        --artifacts DIR && cargo xtask eval --artifacts DIR` gives the same accuracy).

Needs torch, numpy and safetensors; the data in /usr/share/datasets/fashion-mnist (--data).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benches", "reference"))
from mixer import MEAN, PRESETS, STD, Mixer, idx, optimizer, train_epoch  # noqa: E402

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]


def split(data, name):
    images = idx(f"{data}/{name}-images-idx3-ubyte.gz").astype(np.float32) / 255
    labels = idx(f"{data}/{name}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy((images - MEAN) / STD), torch.from_numpy(labels)


def accuracy(net, x, y):
    net.eval()
    with torch.no_grad():
        predicted = torch.cat([net(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return (predicted == y).double().mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["check", "train"])
    ap.add_argument("file")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="coursework")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    x_test, y_test = split(args.data, "t10k")

    if args.command == "check":
        with safe_open(args.file, framework="pt") as f:
            config = json.loads(f.metadata()["fashion_mixer.config"])
        net = Mixer(config["model"])
        net.load_state_dict(load_file(args.file), strict=True)
        print(f"PyTorch, {args.file}: test accuracy {100 * accuracy(net, x_test, y_test):.2f}%")
        return

    config = json.loads(json.dumps(PRESETS[args.preset]))
    net = Mixer(config["model"])
    opt = optimizer(config, net.parameters())
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
    x, y = split(args.data, "train")
    bs = config["batch_size"]
    for epoch in range(args.epochs):
        train_epoch(net, opt, loss_fn, x, y, bs)
        print(f"epoch {epoch + 1}: test accuracy {100 * accuracy(net, x_test, y_test):.2f}%")
    # The fields of a TrainingConfig that describe the model; `import` fills in the rest.
    meta = {
        "fashion_mixer.config": json.dumps({"model": config["model"]}),
        "fashion_mixer.normalization": json.dumps({"mean": MEAN, "std": STD}),
        "fashion_mixer.classes": json.dumps(CLASSES),
    }
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, args.file, metadata=meta)
    print(f"wrote {args.file}")


if __name__ == "__main__":
    main()
