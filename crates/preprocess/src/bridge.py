"""ipukit bridge: runs image_preprocess(path, norm) of a user's preprocessing script.

Started once per worker as `python3 bridge.py SCRIPT`, it imports SCRIPT as the seeds' tools do
(its folder first on sys.path, module name = file stem), then serves requests on stdin until EOF.

Protocol (all integers little-endian):
  request : u32 path length, u8 norm (0/1), path bytes (os.fsencode form)
  response: u8 status, u64 payload length, payload
            status 0: payload is .npy bytes (np.save of the returned array, C order);
                      the first response after start-up is b"ready"
            status 1: payload is a one-line UTF-8 message; for the start-up response the
                      worker then exits
Anything the script prints goes to stderr; stdout carries only the protocol.
"""
import os
import struct
import sys
import traceback


def main():
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    script = sys.argv[1]

    def send(status, payload):
        proto.write(struct.pack("<BQ", status, len(payload)))
        proto.write(payload)
        proto.flush()

    def fail(message):
        send(1, " ".join(str(message).split()).encode("utf-8", "replace"))

    def where(exc):
        """The innermost traceback frame inside the script, as ' (at file line N)'."""
        frames = traceback.extract_tb(exc.__traceback__)
        mine = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(script)]
        f = (mine or frames or [None])[-1]
        if f is None:
            return ""
        return " (at %s line %d%s)" % (os.path.basename(f.filename), f.lineno,
                                       ": " + f.line.strip() if f.line else "")

    def describe(exc):
        text = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return text + where(exc)

    try:
        import numpy as np
    except Exception as e:  # noqa: BLE001
        fail("numpy is not available to %s (%s); install numpy there or set IPUKIT_PYTHON to a "
             "Python that has it" % (sys.executable, describe(e)))
        return
    if not os.path.isfile(script):
        fail("no such file")
        return
    import importlib.util
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    name = os.path.splitext(os.path.basename(script))[0]
    try:
        spec = importlib.util.spec_from_file_location(name, script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except SyntaxError as e:
        line = (e.text or "").strip()
        fail("SyntaxError: %s (at %s line %s%s)" % (e.msg, os.path.basename(e.filename or script),
                                                    e.lineno, ": " + line if line else ""))
        return
    except BaseException as e:  # noqa: BLE001 - report anything the import raises
        fail("importing the script failed: " + describe(e))
        return
    fn = getattr(module, "image_preprocess", None)
    if not callable(fn):
        fail("the script has no function image_preprocess(image_file, norm=True)")
        return
    send(0, b"ready")

    while True:
        head = requests.read(5)
        if len(head) < 5:
            return
        length, norm = struct.unpack("<IB", head)
        path = os.fsdecode(requests.read(length))
        try:
            out = fn(path, norm=bool(norm))
        except KeyboardInterrupt:
            return
        except BaseException as e:  # noqa: BLE001 - SystemExit too: report, keep serving
            fail("image_preprocess(%r, norm=%s) raised %s" % (path, bool(norm), describe(e)))
            continue
        if not isinstance(out, np.ndarray):
            fail("image_preprocess(%r, norm=%s) returned %s, not a numpy.ndarray"
                 % (path, bool(norm), type(out).__name__))
            continue
        if out.dtype.kind not in "biuf" or out.dtype.itemsize > 8:
            fail("image_preprocess(%r, norm=%s) returned an array of dtype %s; return bool, "
                 "(u)int8/16/32/64 or float16/32/64" % (path, bool(norm), out.dtype))
            continue
        import io
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(out), allow_pickle=False)
        send(0, buf.getvalue())


if __name__ == "__main__":
    main()
