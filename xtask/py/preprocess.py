#!/usr/bin/env python3
"""Run a fixture's preprocessing script on images and save the arrays as .npy.

    preprocess.py --model-dir fixtures/models/X --image I --norm true|false --out x.npy
    (--image and --out may be repeated; they pair up in order)

Imports X/preprocess.py (the seeds' convention: image_preprocess(image_file, norm=True)) and
checks the result against the input shape declared in X/model.toml.

    preprocess.py --model-dir fixtures/models/X --image I --check-ini

checks instead that norm=True equals (norm=False - mean) / std with X/input_config.ini's
mean and std_value (RGB order; reversed for BGR training formats): the float and the fixed
model must see the same image.
"""
import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import die, load_model, parse_bool  # noqa: E402


def load_script(path):
    spec = importlib.util.spec_from_file_location("ipukit_fixture_preprocess", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not hasattr(mod, "image_preprocess"):
        die(f"{path} has no image_preprocess(image_file, norm=True)")
    return mod


def read_ini(path):
    """[SECTION] key=value; lines of an input_config.ini (comments after #)."""
    sections, cur = {}, None
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            cur = sections.setdefault(line[1:-1].strip(), {})
            continue
        if "=" in line and cur is not None:
            k, v = line.split("=", 1)
            cur[k.strip()] = v.strip().rstrip(";").strip()
    return sections


def check_ini(model_dir, mod, image):
    ini = read_ini(Path(model_dir) / "input_config.ini")["INPUT_CONFIG"]
    fmt = ini["training_input_formats"].split(",")[0]
    mean = [float(v) for v in ini["mean"].split(",")[0].split(":")]
    std = [float(v) for v in ini["std_value"].split(",")[0].split(":")]
    if fmt == "BGR":
        mean, std = mean[::-1], std[::-1]
    f = mod.image_preprocess(image, norm=True)
    u = mod.image_preprocess(image, norm=False)
    if f.shape != u.shape:
        die(f"{image}: norm=True gives {list(f.shape)}, norm=False {list(u.shape)}", 1)
    want = (u.astype(np.float64) - np.array(mean)) / np.array(std)
    diff = float(np.max(np.abs(want - f)))
    print(f"{image}: |norm=True - (norm=False - mean)/std| <= {diff:.2g} ({fmt}, mean {mean}, std {std})")
    if diff > 1e-4:
        die(f"{image}: input_config.ini's mean/std do not match preprocess.py (difference {diff:.3g})", 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--image", action="append", required=True)
    ap.add_argument("--norm", default="true")
    ap.add_argument("--out", action="append", default=[])
    ap.add_argument("--check-ini", action="store_true")
    a = ap.parse_args()
    if a.check_ini:
        mod = load_script(Path(a.model_dir) / "preprocess.py")
        for image in a.image:
            check_ini(a.model_dir, mod, image)
        return
    if len(a.image) != len(a.out):
        die("give as many --out as --image")
    norm = parse_bool(a.norm)
    model = load_model(a.model_dir)
    mod = load_script(Path(a.model_dir) / "preprocess.py")
    want = model["inputs"][0].get("shape")
    for image, out in zip(a.image, a.out):
        if not Path(image).is_file():
            die(f"no such image: {image}")
        x = mod.image_preprocess(image, norm=norm)
        if not isinstance(x, np.ndarray):
            die(f"image_preprocess returned {type(x).__name__}, not a numpy.ndarray")
        if want is not None and list(x.shape) != list(want):
            die(f"{image}: preprocess gave shape {list(x.shape)}, model.toml says {want}")
        if norm and x.dtype != np.float32:
            die(f"{image}: norm=True must give float32, got {x.dtype}")
        if not norm and x.dtype != np.uint8:
            die(f"{image}: norm=False must give uint8, got {x.dtype}")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        np.save(out, x)
        print(f"{image} -> {out} {list(x.shape)} {x.dtype}")


if __name__ == "__main__":
    main()
