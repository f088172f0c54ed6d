#!/usr/bin/env python3
"""Make N distinct calibration images of one size, for the memory benchmark of bench-peers.

    calib_images.py --out-dir D --count 1000 [--size 480x360] [--lists 10,1000]

Image i is a crop of the photo (i mod k) of .cache/images (k photos, each scaled so that its
shorter side is 1.25x the crop's), at an offset drawn from a generator seeded with i, mirrored
when i is odd, saved as D/img_<i>.jpg (quality 90): every image differs and all have the same
size, so the runs on the first 10 and on all 1000 do the same work per image. D/list_<n>.txt
lists the first n for each n of --lists (absolute paths, the calibrator's `-i LIST`).
A stamp (D/stamp.json) skips the work when D already holds the same set.
"""
import argparse
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, die  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--size", default="480x360")
    ap.add_argument("--lists", default="")
    a = ap.parse_args()
    from PIL import Image, ImageOps

    try:
        w, h = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        die(f"--size is WxH, not {a.size!r}")
    lists = sorted({int(n) for n in a.lists.split(",") if n.strip()} | {a.count})
    if lists[0] < 1 or lists[-1] > a.count:
        die("--lists must be between 1 and --count")
    photos = sorted(p for p in (CACHE / "images").iterdir() if p.suffix.lower() in (".png", ".jpg"))
    if not photos:
        die(f"{CACHE / 'images'} has no photo: run `cargo xtask fetch`")
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = {"count": a.count, "size": [w, h], "photos": [p.name for p in photos], "version": 1}
    stamp_path = out / "stamp.json"
    paths = [(out / f"img_{i:05d}.jpg").resolve() for i in range(a.count)]
    fresh = not (stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp
                 and all(p.is_file() for p in paths))
    if fresh:
        scaled = []
        for p in photos:
            im = Image.open(p).convert("RGB")
            f = 1.25 * max(w / im.width, h / im.height)
            scaled.append(im.resize((max(w, round(im.width * f)), max(h, round(im.height * f))),
                                    Image.BILINEAR))
        for i, path in enumerate(paths):
            src = scaled[i % len(scaled)]
            rng = random.Random(i)
            x, y = rng.randrange(src.width - w + 1), rng.randrange(src.height - h + 1)
            im = src.crop((x, y, x + w, y + h))
            if i % 2:
                im = ImageOps.mirror(im)
            tmp = path.with_suffix(".tmp.jpg")
            im.save(tmp, quality=90)
            os.replace(tmp, path)
        stamp_path.write_text(json.dumps(stamp))
    for n in lists:
        (out / f"list_{n}.txt").write_text("".join(f"{p}\n" for p in paths[:n]))
    print(f"{a.count} images {w}x{h} in {out} ({'made' if fresh else 'cached'}); lists {lists}")


if __name__ == "__main__":
    main()
