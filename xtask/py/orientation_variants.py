"""Writes N distinct, deterministic variants of real photos, for measuring `--num_process`.

Usage: python orientation_variants.py SRC_DIR OUT_DIR [N=1000]

Each output is one of SRC_DIR's .png/.jpg photos (taken in turn), randomly cropped to 40-100 %
of each side, rotated by 0/90/180/270 degrees and possibly mirrored; every fifth is written as a
JPEG (quality 90), the others as PNG. The random generator is seeded, so the set is the same on
every machine with the same photos (`cargo xtask fetch` puts them in .cache/images).
"""
import os
import sys

import numpy as np
from PIL import Image


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2])
    src_dir, out = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) == 4 else 1000
    photos = sorted(
        os.path.join(src_dir, f) for f in os.listdir(src_dir) if f.endswith((".png", ".jpg"))
    )
    if not photos:
        sys.exit(f"no .png or .jpg photos in {src_dir}")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20260101)
    rotations = [None, Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270]
    for i in range(n):
        im = Image.open(photos[i % len(photos)]).convert("RGB")
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.4, 1.0)), int(h * rng.uniform(0.4, 1.0))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        im = im.crop((x0, y0, x0 + cw, y0 + ch))
        rotation = rotations[int(rng.integers(0, 4))]
        if rotation is not None:
            im = im.transpose(rotation)
        if rng.integers(0, 2):
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        if i % 5 == 4:
            im.save(os.path.join(out, f"img_{i:04d}.jpg"), quality=90)
        else:
            im.save(os.path.join(out, f"img_{i:04d}.png"))


if __name__ == "__main__":
    main()
