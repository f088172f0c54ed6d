#!/usr/bin/env python3
"""Run an ONNX model with ONNX Runtime on .npy inputs and save its outputs as .npy.

    ort_run.py MODEL.onnx --inputs a.npy [b.npy ...] --out-dir D [--threads N]
               [--model-dir fixtures/models/X | --onnx-layout NCHW|NHWC]

CPU execution provider, sequential execution, a fixed number of intra-op threads. The .npy files
are in ipukit's boundary layout (4-D tensors NHWC). With --model-dir, each input/output is
transposed according to its `onnx_layout` in model.toml; with --onnx-layout NCHW every 4-D
tensor is transposed; with neither, tensors are passed as they are. D gets one .npy per
output and outputs.json listing them in order.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import die, from_onnx, load_model, to_onnx, write_outputs  # noqa: E402


def session(model_path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(str(model_path), sess_options=so, providers=["CPUExecutionProvider"])


def layouts(args, n_in, n_out):
    if args.model_dir:
        m = load_model(args.model_dir)
        li = [t["onnx_layout"] for t in m["inputs"]]
        lo = [t["onnx_layout"] for t in m["outputs"]]
        if len(li) != n_in or len(lo) != n_out:
            die(f"model.toml lists {len(li)} input(s)/{len(lo)} output(s), the model has {n_in}/{n_out}")
        return li, lo
    lay = args.onnx_layout or "plain"
    return [lay] * n_in, [lay] * n_out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--inputs", nargs="+", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model-dir")
    ap.add_argument("--onnx-layout", choices=["NCHW", "NHWC"])
    a = ap.parse_args()
    sess = session(a.model, a.threads)
    ins = sess.get_inputs()
    outs = sess.get_outputs()
    if len(a.inputs) != len(ins):
        die(f"the model has {len(ins)} input(s), {len(a.inputs)} given")
    lin, lout = layouts(a, len(ins), len(outs))
    feed = {}
    for meta, path, lay in zip(ins, a.inputs, lin):
        feed[meta.name] = to_onnx(np.load(path), lay)
    results = sess.run(None, feed)
    results = [from_onnx(np.asarray(r), lay) for r, lay in zip(results, lout)]
    write_outputs(a.out_dir, [o.name for o in outs], results)
    for o, r in zip(outs, results):
        print(f"{o.name}: {list(r.shape)} {r.dtype}")


if __name__ == "__main__":
    main()
