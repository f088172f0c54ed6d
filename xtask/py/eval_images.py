#!/usr/bin/env python3
"""Make a fixture's evaluation (or calibration) images and list them.

    eval_images.py --model-dir fixtures/models/X --out-dir D [--section eval|calibration]

Each [[eval]] entry of X/model.toml (or [[calibration]] with --section calibration) names a
photo of .cache/images (`image`), optionally a `crop = [x, y, w, h]` (pixels of that photo)
and a clockwise `rotate` of 0/90/180/270 applied after the crop, or instead a
`render = "text"` line drawn in black on white (Pillow's default font, `font_size`, default
32). Derived images are written to D as PNG; D/eval.json lists
{id, path, expect, float_only} in order (`expect` is the decoded result the reference must
give, if set; `float_only` marks an image that also calibrates the fixed-point stage, compared
in float only); with --section calibration the listing is D/calibration.json.
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, die, load_model, sanitize  # noqa: E402


def derive(entry, out_dir):
    from PIL import Image, ImageDraw, ImageFont

    if "render" in entry:
        text = entry["render"]
        size = int(entry.get("font_size", 32))
        font = ImageFont.load_default(size=size)
        x0, y0, x1, y1 = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
        pad = size // 4
        im = Image.new("RGB", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), (255, 255, 255))
        ImageDraw.Draw(im).text((pad - x0, pad - y0), text, fill=(0, 0, 0), font=font)
        ident = entry.get("id") or "render_" + sanitize(text)
    else:
        src = CACHE / "images" / entry["image"]
        if not src.is_file():
            die(f"{src} does not exist: run `cargo xtask fetch`")
        crop = entry.get("crop")
        rot = int(entry.get("rotate", 0))
        if crop is None and rot == 0:
            return entry.get("id") or Path(entry["image"]).stem, src
        im = Image.open(src)
        im = im.convert("RGB") if im.mode not in ("L", "RGB") else im
        ident = Path(entry["image"]).stem
        if crop is not None:
            x, y, w, h = (int(v) for v in crop)
            im = im.crop((x, y, x + w, y + h))
            ident += f"_crop{x}x{y}x{w}x{h}"
        if rot:
            if rot not in (90, 180, 270):
                die(f"rotate must be 0, 90, 180 or 270, not {rot}")
            # PIL rotates counter-clockwise; the fixtures speak of clockwise rotations.
            im = im.rotate(-rot, expand=True)
            ident += f"_rot{rot}"
        ident = entry.get("id") or ident
    path = out_dir / f"{ident}.png"
    tmp = out_dir / f"{ident}.tmp.png"
    im.save(tmp)
    os.replace(tmp, path)
    return ident, path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--section", default="eval", choices=["eval", "calibration"])
    a = ap.parse_args()
    model = load_model(a.model_dir)
    out_dir = Path(a.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    listing, seen = [], set()
    for entry in model.get(a.section, []):
        ident, path = derive(entry, out_dir)
        if ident in seen:
            die(f"two [[{a.section}]] entries give the id {ident!r}: set `id`")
        seen.add(ident)
        item = {"id": ident, "path": str(path)}
        if "expect" in entry:
            item["expect"] = str(entry["expect"])
        if entry.get("float_only"):
            item["float_only"] = True
        listing.append(item)
    (out_dir / f"{a.section}.json").write_text(json.dumps(listing, indent=1, ensure_ascii=False))
    for item in listing:
        print(f"{item['id']}: {item['path']}" + (f" (expect {item['expect']!r})" if "expect" in item else ""))


if __name__ == "__main__":
    main()
