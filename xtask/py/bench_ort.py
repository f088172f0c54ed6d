#!/usr/bin/env python3
"""Time ONNX Runtime on one input; print JSON.

    bench_ort.py MODEL.onnx --input x.npy --threads N --warmup W --runs R
                 [--model-dir fixtures/models/X | --onnx-layout NCHW|NHWC]

Prints {"median_ms", "mean_ms", "min_ms", "max_ms", "runs", "warmup", "threads",
"max_rss_kb", "onnxruntime"}; max_rss_kb is this process's peak resident set after the runs
(resource.getrusage(RUSAGE_SELF).ru_maxrss, kB on Linux). The input is in ipukit's layout
(NHWC) and is transposed as ort_run.py does.
"""
import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import die, load_model, to_onnx  # noqa: E402
from ort_run import session  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--input", nargs="+", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--model-dir")
    ap.add_argument("--onnx-layout", choices=["NCHW", "NHWC"])
    a = ap.parse_args()
    if a.runs < 1:
        die("--runs must be at least 1")
    import onnxruntime as ort

    sess = session(a.model, a.threads)
    ins = sess.get_inputs()
    if len(a.input) != len(ins):
        die(f"the model has {len(ins)} input(s), {len(a.input)} given")
    if a.model_dir:
        lay = [t["onnx_layout"] for t in load_model(a.model_dir)["inputs"]]
    else:
        lay = [a.onnx_layout or "plain"] * len(ins)
    feed = {m.name: to_onnx(np.load(p), l) for m, p, l in zip(ins, a.input, lay)}
    for _ in range(a.warmup):
        sess.run(None, feed)
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "runs": a.runs,
        "warmup": a.warmup,
        "threads": a.threads,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
