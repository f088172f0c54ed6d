#!/usr/bin/env python3
"""Compare a candidate's outputs with a reference's, numerically and decoded.

    compare.py --model-dir fixtures/models/X --ref R... --cand C... [--min-cosine 0.9999]
               [--min-iou 0.95] [--expect E] [--label NAME] [--json OUT]
    compare.py --model-dir fixtures/models/X --batch CASES.json --json OUT [--min-cosine ...]

R and C are folders written by ort_run.py / cargo xtask (outputs.json + .npy files), or .npy
files in the model's output order; all in ipukit's boundary layout (4-D NHWC). For every output
it prints the cosine similarity and the largest absolute difference; then it decodes both sides
with the model's `[decode]` kind (model.toml) and compares the results:
  classify     argmax label (OriNet, PP-OCR direction classifier)
  ctc          greedy CTC text with the character list (PP-OCR recogniser)
  db           DB binarisation and boxes at rapidocr's thresholds (PP-OCR detector), IoU-matched
  yolov8       NudeNet's YOLOv8 decoding and OpenCV NMS, class-equal and IoU-matched
  mtcnn_pnet   P-Net proposals (cells over the stage-1 threshold) and per-cell argmax
  mtcnn_box    R-Net/O-Net face decision (argmax / stage threshold)
With --expect the reference's decoded result must also be E (a label, a text, or a count).
--batch compares many pairs in one run: CASES.json is a list of {ref, cand, label, expect?}
(ref and cand each a folder or one .npy) and OUT receives the list of verdicts.
Exit status: 0 when every output reaches --min-cosine, shapes agree and decoded results are
equal (and as expected); 1 otherwise; 2 on a usage error.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import decode  # noqa: E402
from common import die, load_model, read_outputs  # noqa: E402


def compare(model, ref_paths, cand_paths, min_cosine, min_iou, expect=None, label=""):
    """Compares one candidate with one reference; prints the lines and returns the verdict."""
    rnames, ref = read_outputs(ref_paths)
    cnames, cand = read_outputs(cand_paths)
    problems = []
    if len(ref) != len(cand):
        die(f"{len(ref)} reference output(s) but {len(cand)} candidate output(s)", 1)
    rows, min_cos = [], 1.0
    for i, (rn, r, c) in enumerate(zip(rnames, ref, cand)):
        if r.shape != c.shape:
            problems.append(f"output {i} ({rn}): shape {list(r.shape)} vs {list(c.shape)}")
            rows.append((rn, list(r.shape), None, None))  # null in the JSON (NaN is not JSON)
            min_cos = 0.0
            continue
        cos = decode.cosine(r, c)
        diff = float(np.max(np.abs(r.astype(np.float64) - c.astype(np.float64)))) if r.size else 0.0
        rows.append((rn, list(r.shape), cos, diff))
        min_cos = min(min_cos, cos)
        if not cos >= min_cosine:
            problems.append(f"output {i} ({rn}): cosine {cos:.6f} < {min_cosine}")
    cfg = dict(model.get("decode", {}))
    kind = cfg.get("kind")
    cfg.setdefault("min_iou", min_iou)
    result = {"label": label, "model": model.get("name"), "min_cosine": min_cos,
              "outputs": [{"name": n, "shape": s, "cosine": c, "max_abs_diff": d} for n, s, c, d in rows]}
    head = f"[{label}] " if label else ""
    for n, s, c, d in rows:
        if c is None:
            print(f"{head}{n} {s}: shapes differ")
        else:
            print(f"{head}{n} {s}: cosine {c:.7f}, max |diff| {d:.3g}")
    decoded_equal = None
    if kind and not any("shape" in p for p in problems):
        if kind not in decode.DECODERS:
            die(f"unknown decode kind {kind!r} in model.toml")
        fn, eq = decode.DECODERS[kind]
        if kind == "ctc":
            cfg["_charset"] = decode.charset_from_onnx(str(model["onnx_path"]), cfg.get("charset_metadata_key", "character"))
        rd, cd = fn(ref, cfg), fn(cand, cfg)
        same, why = eq(rd, cd, cfg)
        decoded_equal = bool(same)
        print(f"{head}decoded ({kind}): reference {decode.summary(kind, rd)} | candidate {decode.summary(kind, cd)}"
              f" -> {'equal' if same else 'DIFFERENT'}{(' (' + why + ')') if why else ''}")
        if not same:
            problems.append(f"decoded results differ: {why}")
        result.update(decoded_equal=decoded_equal, reference=decode.public(rd), candidate=decode.public(cd),
                      reference_summary=decode.summary(kind, rd), candidate_summary=decode.summary(kind, cd))
        if expect is not None:
            ok = decode.expected_matches(kind, rd, expect)
            result["expect"] = expect
            result["expect_ok"] = ok
            if not ok:
                problems.append(f"reference decodes to {decode.summary(kind, rd)}, fixture expects {expect!r}")
    result["ok"] = not problems
    result["problems"] = problems
    for p in problems:
        print(f"{head}FAIL: {p}")
    print(f"{head}{'OK' if not problems else 'FAILED'} (min cosine {min_cos:.7f})")
    return result


def write_json(path, value):
    Path(path).write_text(json.dumps(value, indent=1, ensure_ascii=False, default=float))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--ref", nargs="+")
    ap.add_argument("--cand", nargs="+")
    ap.add_argument("--batch")
    ap.add_argument("--min-cosine", type=float, default=0.9999)
    ap.add_argument("--min-iou", type=float, default=0.95)
    ap.add_argument("--expect")
    ap.add_argument("--label", default="")
    ap.add_argument("--json")
    a = ap.parse_args()
    model = load_model(a.model_dir)
    if a.batch:
        if a.ref or a.cand or a.expect is not None:
            die("--batch replaces --ref, --cand and --expect")
        if not a.json:
            die("--batch needs --json")
        cases = json.loads(Path(a.batch).read_text())
        results = [compare(model, [c["ref"]], [c["cand"]], a.min_cosine, a.min_iou, c.get("expect"), c.get("label", ""))
                   for c in cases]
        write_json(a.json, results)
        sys.exit(0 if all(r["ok"] for r in results) else 1)
    if not a.ref or not a.cand:
        die("give --ref and --cand, or --batch")
    result = compare(model, a.ref, a.cand, a.min_cosine, a.min_iou, a.expect, a.label)
    if a.json:
        write_json(a.json, result)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
