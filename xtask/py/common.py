"""Shared helpers of xtask's Python scripts: model.toml, layouts, .npy output folders."""

import json
import os
import re
import sys
import tomllib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"

LAYOUTS = ("NCHW", "NHWC", "plain")


def die(msg, code=2):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def load_model(model_dir):
    """model.toml of a fixture folder, with `onnx_path` resolved under .cache/."""
    model_dir = Path(model_dir)
    path = model_dir / "model.toml"
    if not path.is_file():
        die(f"{path} does not exist")
    with open(path, "rb") as f:
        m = tomllib.load(f)
    m["_dir"] = model_dir
    m["onnx_path"] = CACHE / m["onnx"]
    for t in m.get("inputs", []) + m.get("outputs", []):
        if t.get("onnx_layout") not in LAYOUTS:
            die(f"{path}: tensor {t.get('name')}: onnx_layout must be one of {LAYOUTS}")
    return m


def to_onnx(x, layout):
    """ipukit boundary (NHWC) -> ONNX layout."""
    if layout == "NCHW" and x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def from_onnx(y, layout):
    """ONNX layout -> ipukit boundary (NHWC)."""
    if layout == "NCHW" and y.ndim == 4:
        return np.ascontiguousarray(y.transpose(0, 2, 3, 1))
    return y


def sanitize(name):
    """A tensor name as a file name."""
    s = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return s or "unnamed"


def write_outputs(out_dir, names, arrays):
    """One .npy per output plus outputs.json listing them in order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    listing = []
    for i, (n, a) in enumerate(zip(names, arrays)):
        fname = f"{i}_{sanitize(n)}.npy"
        np.save(out_dir / fname, a)
        listing.append({"name": n, "file": fname, "shape": list(a.shape), "dtype": str(a.dtype)})
    tmp = out_dir / "outputs.json.tmp"
    tmp.write_text(json.dumps(listing, indent=1))
    os.replace(tmp, out_dir / "outputs.json")


def read_outputs(paths):
    """Outputs from a folder holding outputs.json, or from .npy files in output order."""
    if len(paths) == 1 and Path(paths[0]).is_dir():
        d = Path(paths[0])
        listing_path = d / "outputs.json"
        if not listing_path.is_file():
            die(f"{d} has no outputs.json")
        listing = json.loads(listing_path.read_text())
        return [e["name"] for e in listing], [np.load(d / e["file"]) for e in listing]
    return [Path(p).stem for p in paths], [np.load(p) for p in paths]


def parse_bool(s):
    v = str(s).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    die(f"not a boolean: {s!r}")
