#!/usr/bin/env python3
"""ONNX Runtime's static quantization on a fixture, for `cargo xtask bench-peers`.

    ort_quant.py MODEL.onnx --model-dir fixtures/models/X --calibration LIST --eval EVAL.json
                 --out-dir D [--methods MinMax,Entropy,Percentile] [--threads 2] [--json OUT]
    ort_quant.py PREPARED.onnx --prepared --calibrate-only --model-dir fixtures/models/X
                 --calibration LIST --out-dir D --methods MinMax [--threads 2]

LIST is the list file ipukit's calibrator gets (`-i LIST`: one image path per line); EVAL.json
the evaluation images (eval_images.py's listing: [{id, path}, ...]). Every image goes through
the fixture's own X/preprocess.py with norm=True (float32, NHWC), transposed to the ONNX
layout of model.toml: exactly what ipukit's float model gets, in ONNX's layout.

1. The model is converted to opset 13 if older (per-channel QDQ needs it), then prepared as
   ONNX Runtime recommends before quantizing
   (onnxruntime.quantization.quant_pre_process: ONNX shape inference and graph optimisation;
   symbolic shape inference, which needs sympy and serves symbolic dimensions, is skipped), once;
   that time is reported apart (ipukit's counterpart, the conversion to float.sim, is not part
   of its calibration time either).
2. For each method, quantize_static(QDQ, per_channel=True, reduce_range=False, activations
   QUInt8, weights QInt8 — what ONNX Runtime's quantize_static documentation recommends for x86
   CPUs with VNNI) runs with a CalibrationDataReader that preprocesses the calibration images
   one by one as ONNX Runtime asks for them; its wall time (preprocessing, calibration
   inference, ranges, quantization, writing the model) is the calibration time, and the part
   spent in preprocess.py is reported too. The calibration session uses --threads intra-op
   threads (ONNX Runtime's own calibration session leaves the count at its default; it is set
   here so that both tools calibrate on the same number of threads).
3. The float model and each quantized model run on the evaluation images (--threads intra-op
   threads, sequential); the cosine of each quantized output with the float output of the same
   image is reported per output and image, with the mean and minimum. The float outputs are
   written to D/eval/<id>/ort_float/ in ipukit's layout (common.write_outputs) so that ipukit's
   fixed outputs can be compared with them too.

With --calibrate-only, only step 2 runs (no evaluation), and with --prepared MODEL is taken as
already prepared (step 1 skipped): bench-peers times such a process from start to exit, so
that the interpreter's start and imports count as ipukit's Python workers' start does.
Latency is measured separately (bench_ort.py on D/<method>.onnx, in its own process).
Prints one JSON line (also written to --json).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import die, from_onnx, load_model, to_onnx, write_outputs  # noqa: E402
from decode import cosine  # noqa: E402
from ort_run import session  # noqa: E402
from preprocess import load_script  # noqa: E402

METHODS = ("MinMax", "Entropy", "Percentile")


def set_calibration_threads(threads):
    """ONNX Runtime's calibrater makes its session with default options; give it `threads`
    intra-op threads (the same code as CalibraterBase.create_inference_session otherwise)."""
    import onnxruntime
    from onnxruntime.quantization import calibrate

    def create_inference_session(self):
        so = onnxruntime.SessionOptions()
        so.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self.infer_session = onnxruntime.InferenceSession(
            self.augmented_model_path, sess_options=so, providers=self.execution_providers
        )

    calibrate.CalibraterBase.create_inference_session = create_inference_session


def prepare(model, out):
    """Opset 13 at least (per-channel QuantizeLinear/DequantizeLinear need the `axis` of
    opset 13: the quantizer writes it whatever the model's opset, and ONNX Runtime then
    rejects the model), then quant_pre_process; the model before the failing step (and why)
    if one fails."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import quant_pre_process

    notes = []
    m = onnx.load(model)
    opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 13:
        try:
            m = version_converter.convert_version(m, 13)
            model = out.with_name("opset13.onnx")
            onnx.save(m, model)
            notes.append(f"converted from opset {opset} to 13")
        except Exception as e:  # noqa: BLE001 - reported; quantization will likely fail
            notes.append(f"opset {opset}, conversion to 13 failed ({type(e).__name__}: {e})")
    try:
        # Symbolic shape inference is for models with symbolic dimensions (transformers) and
        # needs sympy; ONNX shape inference covers the fixtures' fixed-shape CNNs.
        quant_pre_process(model, str(out), skip_symbolic_shape=True)
        return out, "; ".join(notes + ["quant_pre_process"])
    except Exception as e:  # noqa: BLE001 - reported, the model before it is used instead
        notes.append(f"quant_pre_process failed ({type(e).__name__}: {e}), not applied")
        return Path(model), "; ".join(notes)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--calibration", required=True, help="list file, one image per line")
    ap.add_argument("--eval", help="eval_images.py's JSON listing (not with --calibrate-only)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--prepared", action="store_true", help="MODEL is already prepared")
    ap.add_argument("--calibrate-only", action="store_true", help="no evaluation")
    a = ap.parse_args()
    if not a.calibrate_only and not a.eval:
        die("--eval is needed unless --calibrate-only")

    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            die(f"unknown method {m!r}: one of {', '.join(METHODS)}")
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(a.model_dir)
    if len(model["inputs"]) != 1:
        die("only single-input models are supported")
    in_layout = model["inputs"][0]["onnx_layout"]
    out_layouts = [t["onnx_layout"] for t in model["outputs"]]
    pre = load_script(Path(a.model_dir) / "preprocess.py")
    cal_paths = [l.strip() for l in Path(a.calibration).read_text().splitlines() if l.strip()]
    evals = [] if a.calibrate_only else json.loads(Path(a.eval).read_text())
    if not cal_paths or not (evals or a.calibrate_only):
        die("no calibration or no evaluation image")
    if set(cal_paths) & {str(Path(e["path"]).resolve()) for e in evals}:
        die("an image is both a calibration and an evaluation image")

    def prep(path):
        return to_onnx(pre.image_preprocess(path, norm=True), in_layout)

    # 1. ONNX Runtime's recommended preparation.
    t = time.perf_counter()
    prepared, pre_note = (Path(a.model), "quant_pre_process (done before)") if a.prepared \
        else prepare(a.model, out / "prepared.onnx")
    prepare_s = time.perf_counter() - t

    # 3a. Float reference outputs.
    in_name = model["inputs"][0]["name"]
    out_names = []
    eval_inputs = {}
    float_outs = {}
    if not a.calibrate_only:
        fsess = session(a.model, a.threads)
        if fsess.get_inputs()[0].name != in_name:
            die(f"model.toml names the input {in_name!r}, the model {fsess.get_inputs()[0].name!r}")
        out_names = [o.name for o in fsess.get_outputs()]
        if len(out_names) != len(out_layouts):
            die(f"model.toml lists {len(out_layouts)} output(s), the model has {len(out_names)}")
        for e in evals:
            x = prep(e["path"])
            eval_inputs[e["id"]] = x
            ys = fsess.run(None, {in_name: x})
            float_outs[e["id"]] = ys
            write_outputs(out / "eval" / e["id"] / "ort_float", out_names,
                          [from_onnx(np.asarray(y), l) for y, l in zip(ys, out_layouts)])
        del fsess

    set_calibration_threads(a.threads)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0
            self.pre_s = 0.0

        def get_next(self):
            if self.i >= len(cal_paths):
                return None
            t = time.perf_counter()
            x = prep(cal_paths[self.i])
            self.pre_s += time.perf_counter() - t
            self.i += 1
            return {in_name: x}

        def rewind(self):
            self.i = 0

    results = []
    for m in methods:
        qpath = out / f"{m}.onnx"
        reader = Reader()
        t = time.perf_counter()
        quantize_static(
            str(prepared),
            str(qpath),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, m),
        )
        seconds = time.perf_counter() - t
        for tmp in out.glob("augmented_model*.onnx"):
            tmp.unlink()
        per_image = []
        cos_all = []
        qsess = None if a.calibrate_only else session(str(qpath), a.threads)
        for e in evals:
            ys = qsess.run(None, {in_name: eval_inputs[e["id"]]})
            cs = [cosine(y, r) for y, r in zip(ys, float_outs[e["id"]])]
            per_image.append({"id": e["id"], "cosines": cs})
            cos_all.extend(cs)
        results.append({
            "method": m,
            "model": str(qpath),
            "seconds": seconds,
            "preprocess_s": reader.pre_s,
            "calibration_samples": reader.i,
            "mean_cosine": float(np.mean(cos_all)) if cos_all else None,
            "min_cosine": float(np.min(cos_all)) if cos_all else None,
            "per_image": per_image,
        })
        print(f"ort_quant: {m}: {seconds:.2f} s (preprocess.py {reader.pre_s:.2f} s)"
              + (f", cosine mean {np.mean(cos_all):.6f} min {np.min(cos_all):.6f}" if cos_all else ""),
              file=sys.stderr)

    report = {
        "onnxruntime": ort.__version__,
        "config": {
            "quant_format": "QDQ",
            "per_channel": True,
            "reduce_range": False,
            "activation_type": "QUInt8",
            "weight_type": "QInt8",
            "threads": a.threads,
        },
        "prepare": pre_note,
        "prepare_s": prepare_s,
        "calibration_images": len(cal_paths),
        "eval_images": len(evals),
        "outputs": out_names,
        "methods": results,
    }
    line = json.dumps(report)
    if a.json:
        tmp = Path(a.json).with_suffix(".tmp")
        tmp.write_text(line)
        os.replace(tmp, a.json)
    print(line)


if __name__ == "__main__":
    main()
