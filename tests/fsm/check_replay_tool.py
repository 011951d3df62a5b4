#!/usr/bin/env python3
"""The replay tool on a real recording: test_sample_mbt --trace records every dispatch of the
generated cases (transitions, failures, pending, rejections, ignores); the tool must find it
conforming, and must name the right line of doctored copies.

    check_replay_tool.py REPLAY_TOOL TEST_SAMPLE_MBT
"""
import os
import subprocess
import sys
import tempfile

tool, mbt = sys.argv[1], sys.argv[2]
failures = []


def replay(lines, tmp, name):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    r = subprocess.run([tool, path], capture_output=True, text=True)
    return r.returncode, r.stdout.strip(), path


with tempfile.TemporaryDirectory() as tmp:
    trace = os.path.join(tmp, "mbt.trace")
    r = subprocess.run([mbt, "--trace", trace], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("test_sample_mbt --trace failed:\n" + r.stdout + r.stderr)
    lines = open(trace, encoding="utf-8").readlines()
    rc, out, _ = replay(lines, tmp, "clean.trace")
    if rc != 0 or "%d records conform" % len(lines) not in out:
        failures.append("clean recording: exit %d, %s" % (rc, out))

    # the first successful transition out of idle, recorded with another target
    k = next(i for i, l in enumerate(lines) if " idle start running ok " in l)
    bad = list(lines)
    bad[k] = bad[k].replace(" idle start running ok ", " idle start paused ok ")
    rc, out, path = replay(bad, tmp, "wrong_to.trace")
    if rc != 1 or not out.startswith("%s:%d: " % (path, k + 1)) or "ok -> running" not in out:
        failures.append("wrong to: exit %d, %s (expected line %d)" % (rc, out, k + 1))

    # a foreign spec hash
    bad = list(lines)
    f = bad[3].split(" ")
    f[2] = "0123456789abcdef"
    bad[3] = " ".join(f)
    rc, out, path = replay(bad, tmp, "hash.trace")
    if rc != 1 or not out.startswith("%s:4: " % path) or "spec hash 0123456789abcdef" not in out:
        failures.append("foreign hash: exit %d, %s" % (rc, out))

    # stdin works and a garbage line is malformed
    r = subprocess.run([tool, "-"], input="".join(lines[:2]) + "garbage\n", capture_output=True, text=True)
    if r.returncode != 1 or "-:3: malformed record" not in r.stdout:
        failures.append("stdin garbage: exit %d, %s" % (r.returncode, r.stdout))

    r = subprocess.run([tool, os.path.join(tmp, "missing")], capture_output=True, text=True)
    if r.returncode != 2:
        failures.append("missing file: exit %d" % r.returncode)

for f in failures:
    print("FAIL " + f)
print("%d passed, %d failed" % (5 - len(failures), len(failures)))
sys.exit(1 if failures else 0)
