"""An exported ONNX model (`cargo xtask export --format onnx`) checked by the ONNX checker and run
by ONNX Runtime, independent of Burn.

    python3 python/onnx_check.py MODEL.onnx --data DIR [--count 200]
        [--compare INFER.jsonl] [--weights MODEL.safetensors] [--tolerance 1e-4]

Feeds the first --count test images (t10k-images-idx3-ubyte[.gz] in --data) as they come, pixels
0-255, and with --compare checks the logits against `cargo xtask infer --json`'s lines for the
same items: every logit within --tolerance and the same predicted class. With --weights, every
weight of the graph must equal the same run's safetensors export bit for bit (the graph's
`MatMul` weights are `[in, out]`, the export's `[out, in]`). Exit status 1 when anything
disagrees. Needs numpy, safetensors, onnx and onnxruntime (python/requirements.txt).
"""

import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_forward import compare, find, idx  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--compare")
    ap.add_argument("--weights")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    print(f"onnx checker: ok (opset {model.opset_import[0].version}, {len(model.graph.node)} nodes)")

    failed = False
    if args.weights:
        from safetensors import safe_open

        with safe_open(args.weights, framework="numpy") as f:
            exported = {name: f.get_tensor(name) for name in f.keys()}
        graph = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        unequal = []
        for name, value in exported.items():
            mine = graph.get(name)
            if mine is None:
                unequal.append(f"{name} missing")
                continue
            mine = mine.T if mine.ndim == 2 else mine
            if mine.dtype != value.dtype or mine.shape != value.shape or not np.array_equal(
                mine.view(np.uint32), value.view(np.uint32)
            ):
                unequal.append(name)
        print(f"weights: {len(exported) - len(unequal)}/{len(exported)} equal to {args.weights} bit for bit")
        failed |= bool(unequal)

    images = idx(find(args.data, "t10k-images-idx3-ubyte"))[: args.count]
    labels = idx(find(args.data, "t10k-labels-idx1-ubyte"))[: args.count]
    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"pixels": images.astype(np.float32)})[0]
    predicted = logits.argmax(axis=1)
    print(
        f"onnx runtime {onnxruntime.__version__}: {len(images)} test images, accuracy "
        f"{100.0 * (predicted == labels).mean():.2f}%"
    )
    if args.compare:
        failed |= not compare(args.compare, logits, predicted, args.tolerance)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
