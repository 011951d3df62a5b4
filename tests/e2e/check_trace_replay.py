#!/usr/bin/env python3
"""`ferryctl trace replay` against every controller spec: for each spec, a trace made from its
current IR (fsmc.py ir) — a walk from the initial state over unguarded transitions, one failure
to the on_error target and one rejected cell — must conform; doctored copies must be reported
at the right line; `trace machines` lists every spec.

    check_trace_replay.py FERRYCTL PYTHON FSMC SPEC...
"""
import errno
import json
import os
import subprocess
import sys
import tempfile

ctl, python, fsmc, specs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
failures = []
# util/status.h: the canonical errno of each error class
CLASS_ERRNO = {
    "cancelled": errno.ECANCELED, "unknown": errno.EIO, "invalid_argument": errno.EINVAL,
    "deadline_exceeded": errno.ETIMEDOUT, "not_found": errno.ENOENT,
    "already_exists": errno.EEXIST, "permission_denied": errno.EACCES,
    "resource_exhausted": errno.ENOSPC, "failed_precondition": errno.EBUSY,
    "aborted": errno.ESTALE, "out_of_range": errno.ERANGE, "unimplemented": errno.EOPNOTSUPP,
    "internal": errno.ENOTRECOVERABLE, "unavailable": errno.ENOTCONN,
    "data_loss": errno.EBADMSG, "unauthenticated": errno.EKEYREJECTED,
}


def ir_of(spec):
    r = subprocess.run([python, fsmc, "ir", spec], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def froms(t):
    return t["from"] if isinstance(t["from"], list) else [t["from"]]


def arms_of(ir, state, event):
    return [t for t in ir["transitions"] if state in froms(t) and t["on"] == event]


def record(ir, inst, frm, ev, to, result, err, time):
    return "fsm1 %s %s %s %s %s %s %s %d %d\n" % (ir["machine"], ir["spec_hash"], inst, frm, ev,
                                                  to, result, err, time)


def make_trace(ir):
    """A conforming trace: up to 6 ok steps, then a failure, then a rejection."""
    initial = next(s["name"] for s in ir["states"] if s["initial"])
    lines, state, t = [], initial, 1000
    for _ in range(6):
        # a cell with exactly one unguarded arm, so "ok -> to" is the only outcome
        cands = [c for c in ir["cells"] if c["state"] == state and c["decision"] == "transition"]
        step = None
        for c in cands:
            arms = arms_of(ir, state, c["event"])
            if len(arms) == 1 and arms[0]["guard"] is None:
                step = arms[0]
                break
        if step is None:
            break
        lines.append(record(ir, "i1", state, step["on"], step["to"], "ok", 0, t))
        state, t = step["to"], t + 10
    fail = next((a for c in ir["cells"] if c["state"] == state and c["decision"] == "transition"
                 for a in arms_of(ir, state, c["event"])
                 if len(arms_of(ir, state, c["event"])) == 1 and a["guard"] is None
                 and a.get("action") and a.get("on_error")), None)
    if fail:
        lines.append(record(ir, "i1", state, fail["on"], fail["on_error"], "failed", -errno.EIO,
                            t))
        state, t = fail["on_error"], t + 10
    rej = next((c for c in ir["cells"] if c["state"] == state and c["decision"] == "reject"),
               None)
    if rej:
        lines.append(record(ir, "i1", state, rej["event"], state, "rejected",
                            -CLASS_ERRNO[rej["error"]], t))
    return lines


def replay(lines, tmp, name):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    r = subprocess.run([ctl, "trace", "replay", path], capture_output=True, text=True)
    return r.returncode, r.stdout.strip() + r.stderr.strip(), path


r = subprocess.run([ctl, "trace", "machines"], capture_output=True, text=True)
listed = set(r.stdout.split())
with tempfile.TemporaryDirectory() as tmp:
    total = 0
    for spec in specs:
        ir = ir_of(spec)
        name = ir["machine"]
        if name not in listed:
            failures.append("trace machines does not list %s" % name)
            continue
        lines = make_trace(ir)
        if len(lines) < 2:
            failures.append("%s: could not build a trace (%d records)" % (name, len(lines)))
            continue
        total += len(lines)
        rc, out, _ = replay(lines, tmp, name + ".trace")
        if rc != 0 or "%d records conform" % len(lines) not in out:
            failures.append("%s clean trace: exit %d, %s\n%s" % (name, rc, out, "".join(lines)))
        # the first record, recorded with a state its cell cannot reach
        bad = list(lines)
        f = bad[0].split(" ")
        wrong = next(s["name"] for s in ir["states"] if s["name"] not in (f[4], f[6]))
        f[6] = wrong
        bad[0] = " ".join(f)
        rc, out, path = replay(bad, tmp, name + "-wrong.trace")
        if rc != 1 or not out.startswith("%s:1: " % path):
            failures.append("%s wrong target: exit %d, %s" % (name, rc, out))
        # a later record whose from is not the instance's state
        if len(lines) >= 2:
            bad = list(lines)
            f = bad[1].split(" ")
            f[4] = next(s["name"] for s in ir["states"] if s["name"] != f[4])
            bad[1] = " ".join(f)
            rc, out, path = replay(bad, tmp, name + "-jump.trace")
            if rc != 1 or not out.startswith("%s:2: " % path):
                failures.append("%s state jump: exit %d, %s" % (name, rc, out))
    rc, out, _ = replay(["fsm1 nosuch 00 i1 a b c ok 0 1\n"], tmp, "unknown.trace")
    if rc != 1:
        failures.append("unknown machine: exit %d, %s" % (rc, out))
    r = subprocess.run([ctl, "trace", "replay", os.path.join(tmp, "missing")],
                       capture_output=True, text=True)
    if r.returncode != 2:
        failures.append("missing file: exit %d" % r.returncode)
    r = subprocess.run([ctl, "trace"], capture_output=True, text=True)
    if r.returncode != 2:
        failures.append("bare `trace`: exit %d" % r.returncode)

for f in failures:
    print("FAIL: " + f)
print("%d specs, %d records replayed, %d failures" % (len(specs), total, len(failures)))
sys.exit(1 if failures else 0)
