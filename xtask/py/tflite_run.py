#!/usr/bin/env python3
"""Run a .sim / .tflite model in the official TFLite interpreter (PyPI ai-edge-litert).

    tflite_run.py MODEL IN0.npy [IN1.npy ...] --out OUT0.npy [--out OUT1.npy ...]
    tflite_run.py MODEL IN0.npy ... --out-dir DIR
    tflite_run.py MODEL --list

Inputs are matched to the model's inputs in order and must have the model's dtype and shape.
Outputs are written in model order (--out, one per output) or as DIR/<index>_<name>.npy.
A JSON summary of the inputs and outputs (name, shape, dtype) goes to stdout.

--resolver ref runs TFLite's reference kernels (no XNNPack, no optimized kernels), which is
the most literal reading of each builtin operator's semantics.

Exit codes: 0 ok, 2 bad usage or inputs, 3 the interpreter rejected the model (for a .sim,
usually a custom IPU_* operator: only float.sim files made of builtin operators run here).
"""

import argparse
import json
import os
import re
import sys

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("inputs", nargs="*", help=".npy files, one per model input, in order")
    ap.add_argument("--out", action="append", default=[], help=".npy path for each output, in order")
    ap.add_argument("--out-dir", help="directory for <index>_<name>.npy outputs")
    ap.add_argument("--resolver", choices=["auto", "builtin", "ref"], default="auto",
                    help="auto: default kernels with XNNPack; builtin: optimized kernels without "
                         "XNNPack; ref: reference kernels")
    ap.add_argument("--list", action="store_true", help="print the model's inputs and outputs and exit")
    args = ap.parse_args(argv)

    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as e:
        print(f"tflite_run.py: ai-edge-litert is not installed ({e}); pip install ai-edge-litert",
              file=sys.stderr)
        return 2

    resolver = {
        "auto": OpResolverType.AUTO,
        "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "ref": OpResolverType.BUILTIN_REF,
    }[args.resolver]
    try:
        interp = Interpreter(model_path=args.model, experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
    except Exception as e:  # the interpreter raises ValueError/RuntimeError with its log
        print(f"tflite_run.py: TFLite rejected {args.model}: {e}", file=sys.stderr)
        return 3

    ins = interp.get_input_details()
    outs = interp.get_output_details()
    describe = lambda d: {"name": d["name"], "shape": [int(x) for x in d["shape"]],
                          "dtype": np.dtype(d["dtype"]).name}
    summary = {"inputs": [describe(d) for d in ins], "outputs": [describe(d) for d in outs]}
    if args.list:
        print(json.dumps(summary, indent=1))
        return 0

    if len(args.inputs) != len(ins):
        print(f"tflite_run.py: the model has {len(ins)} inputs, {len(args.inputs)} .npy files given",
              file=sys.stderr)
        return 2
    for d, path in zip(ins, args.inputs):
        a = np.load(path)
        if list(a.shape) != list(d["shape"]) or a.dtype != np.dtype(d["dtype"]):
            print(f"tflite_run.py: {path} is {a.dtype}{list(a.shape)}, input '{d['name']}' wants "
                  f"{np.dtype(d['dtype'])}{list(d['shape'])}", file=sys.stderr)
            return 2
        interp.set_tensor(d["index"], a)
    try:
        interp.invoke()
    except Exception as e:
        print(f"tflite_run.py: TFLite failed to run {args.model}: {e}", file=sys.stderr)
        return 3

    if args.out and len(args.out) != len(outs):
        print(f"tflite_run.py: the model has {len(outs)} outputs, {len(args.out)} --out given",
              file=sys.stderr)
        return 2
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
    for i, d in enumerate(outs):
        value = interp.get_tensor(d["index"])
        if args.out:
            np.save(args.out[i], value)
        if args.out_dir:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", d["name"]) or "output"
            np.save(os.path.join(args.out_dir, f"{i}_{safe}.npy"), value)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
