"""Repair the known quirks of the ROS 2 ``ros-*`` wheels inside a virtual environment.

The wheels are built in a manylinux container whose Python lives in ``/opt/python/cp311-cp311``.
That path is baked into their CMake export files (Python and numpy include directories of the
``*__rosidl_generator_py`` targets) and into the ament index ``parent_prefix_path`` resources.
Any ``rosidl_generate_interfaces`` build against those packages then fails with
"Imported target ... includes non-existent path".  This script rewrites the paths to the
interpreter running it (use the venv's python).  Idempotent: a second run changes nothing.

Usage: python fix_wheels.py <venv prefix>
"""
import os
import sys
import sysconfig

BAKED = "/opt/python/cp311-cp311"


def replacements(prefix):
    import numpy  # the venv's numpy: its headers are what the generated C extensions compile against

    py_include = sysconfig.get_paths()["include"]
    ver = "python%d.%d" % sys.version_info[:2]
    return [
        (BAKED + "/include/" + ver, py_include),
        (BAKED + "/lib/" + ver + "/site-packages/numpy/_core/include", numpy.get_include()),
        (BAKED, prefix),
    ]


def candidate_files(prefix):
    share = os.path.join(prefix, "share")
    for root, _dirs, files in os.walk(share):
        for name in files:
            if name.endswith(".cmake") or "parent_prefix_path" in root:
                yield os.path.join(root, name)
    for sub in ("lib/cmake", "lib/pkgconfig"):
        base = os.path.join(prefix, sub)
        for root, _dirs, files in os.walk(base):
            for name in files:
                yield os.path.join(root, name)


def main():
    prefix = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    reps = replacements(prefix)
    changed = 0
    for path in candidate_files(prefix):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (UnicodeDecodeError, OSError):
            continue
        if BAKED not in text:
            continue
        for old, new in reps:
            text = text.replace(old, new)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        changed += 1
    left = [p for p in candidate_files(prefix) if _contains(p, BAKED)]
    if left:
        print("fix_wheels: still referencing %s: %s" % (BAKED, left[:5]), file=sys.stderr)
        return 1
    print("fix_wheels: rewrote %d file(s)" % changed)
    return 0


def _contains(path, needle):
    try:
        with open(path, encoding="utf-8") as fh:
            return needle in fh.read()
    except (UnicodeDecodeError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(main())
