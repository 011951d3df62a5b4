#!/usr/bin/env python3
"""Runs `fsmc check` on every bad-spec fixture in tests/fsm/bad and compares its output,
line for line, with tests/fsm/bad/expected.txt; then checks that the good specs pass and
that `fsmc ir` prints the documented format."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BAD = os.path.join(HERE, "bad")
FSMC = os.path.join(HERE, "..", "..", "codegen", "fsmc.py")
failures = []


def fsmc(*args, cwd=BAD):
    r = subprocess.run([sys.executable, FSMC, *args], cwd=cwd, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


expected = {}
with open(os.path.join(BAD, "expected.txt"), encoding="utf-8") as f:
    for line in f:
        line = line.rstrip("\n")
        if line:
            expected.setdefault(line.split(":", 1)[0], []).append(line)

fixtures = sorted(f for f in os.listdir(BAD) if f.endswith(".yaml"))
for fx in fixtures:
    rc, out, err = fsmc("check", fx)
    got = [l for l in out.splitlines() if l]
    want = expected.get(fx)
    if want is None:
        failures.append("%s: no expectation in expected.txt" % fx)
    elif rc != 1 or got != want or err:
        failures.append("%s: rc=%d\n  want: %s\n  got:  %s\n  stderr: %s" % (fx, rc, want, got, err.strip()))
for fx in expected:
    if fx not in fixtures:
        failures.append("%s: expected.txt names a fixture that does not exist" % fx)

# every check the compiler makes has a fixture: each message shape appears in expected.txt
shapes = [
    "unknown key", "must be true or false", "must be one of", "is missing required key",
    "YAML:", "duplicate key", "unknown action", "unknown state", "unknown event", "unknown guard",
    "unknown error class", "is unreachable from the initial state",
    "cannot reach a terminal or rest state", "has no decision and the machine has no default",
    "can both fire for", "is decided twice", "can fail but the transition",
    "has no transition from in-flight state", "guard alternatives must end with 'else'",
    "'else' must be the last alternative", "exactly one initial state is required",
    "no state is marked terminal or rest", "is reserved", "terminal state",
    "is declared but never used", "needs exactly one of", "without an 'action'",
    "a reject needs a 'message'", "is not of kind completion", "in pending of action",
    "must be named after its file",
]
text = "\n".join(l for v in expected.values() for l in v)
for s in shapes:
    if s not in text:
        failures.append("no fixture exercises the check %r" % s)

# the IR format
rc, out, err = fsmc("ir", os.path.join(HERE, "sample.yaml"), cwd=HERE)
if rc != 0:
    failures.append("ir: rc=%d %s" % (rc, err))
else:
    ir = json.loads(out)
    for k in ("machine", "states", "events", "transitions", "cells"):
        if k not in ir:
            failures.append("ir: missing key %s" % k)
    if ir.get("machine") != "sample":
        failures.append("ir: machine is %r" % ir.get("machine"))
    for s in ir["states"]:
        if set(s) != {"name", "initial", "terminal", "rest", "frozen"}:
            failures.append("ir: state keys %s" % sorted(s))
    for e in ir["events"]:
        if set(e) != {"name", "kind"} or e["kind"] not in ("call", "external", "completion"):
            failures.append("ir: event %s" % e)
    for t in ir["transitions"]:
        if set(t) != {"from", "on", "guard", "action", "to", "on_error"}:
            failures.append("ir: transition keys %s" % sorted(t))
    cells = {(c["state"], c["event"]): c for c in ir["cells"]}
    if len(ir["cells"]) != len(ir["states"]) * len(ir["events"]) or len(cells) != len(ir["cells"]):
        failures.append("ir: not one cell per state x event")
    for c in ir["cells"]:
        if c["decision"] not in ("transition", "ignore", "reject"):
            failures.append("ir: decision %r" % c["decision"])
        if (c["decision"] == "reject") != (c["error"] is not None):
            failures.append("ir: cell %s error %r" % ((c["state"], c["event"]), c["error"]))
    # spot checks against the spec
    want = {("paused", "tick"): ("reject", "failed_precondition"),
            ("idle", "stopped"): ("ignore", None),
            ("idle", "start"): ("transition", None),
            ("done", "finish"): ("reject", "failed_precondition")}
    for k, (d, e) in want.items():
        if (cells[k]["decision"], cells[k]["error"]) != (d, e):
            failures.append("ir: cell %s is %s" % (k, cells[k]))
    tick = [t for t in ir["transitions"] if t["from"] == "running" and t["on"] == "tick"]
    if [t["guard"] for t in tick] != ["is_urgent", "has_budget"]:
        failures.append("ir: running/tick guards in order: %s" % tick)

for f in failures:
    print("FAIL", f)
print("fsmc fixtures: %d fixtures and the IR format checked, %d failures" % (len(fixtures), len(failures)))
sys.exit(1 if failures else 0)
