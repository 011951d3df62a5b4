#!/usr/bin/env python3
"""Model-checks the migration specs with Spin (test suite 'model').

    check_model.py --scenario YAML --spec-dir DIR --work DIR [--cc CC...]
                   [--expect-violation] [--replay-same TOOL] [--replay-diverge TOOL]

Generates the Promela model (codegen/fsm_promela.py), runs `spin -a`, compiles pan.c
(-DSAFETY: assertions and invalid end states; -DCOLLAPSE) and runs an exhaustive search, then prints the
figures. Without --expect-violation it fails on any error and prints the counterexample named
with the specs. With it (the broken fixture) it fails unless Spin reports an error, then
replays the trail through the C runtime: each --replay-same tool (linked with the tables the
model was made from) must reproduce it, each --replay-diverge tool (other tables) must not.
Exits 77 (meson's skip) when spin is not installed.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
GEN = os.path.join(ROOT, "codegen", "fsm_promela.py")
TRAIL = os.path.join(HERE, "model_trail.py")


def run(cmd, cwd, what):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("%s failed (exit %d):\n%s%s" % (what, r.returncode, r.stdout, r.stderr))
    return r.stdout


def arm_reach(model, pan_out):
    """Per machine: (alternatives in the model's cells, how many the search reached), from the
    SET_ARM lines of each decide inline and pan's unreached-code report."""
    unreached = {int(m.group(1)) for m in re.finditer(r"model\.pml:(\d+), state \d+", pan_out)}
    out, machine = {}, None
    with open(model, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"inline (\w+)_decide\(", line)
            if m:
                machine = m.group(1)
                out.setdefault(machine, [0, 0])
            elif line.startswith("}"):
                machine = None
            elif machine and "SET_ARM(" in line:
                out[machine][0] += 1
                out[machine][1] += n not in unreached
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--spec-dir", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cc", nargs="+", default=["cc"])
    ap.add_argument("--expect-violation", action="store_true")
    ap.add_argument("--replay-same", action="append", default=[])
    ap.add_argument("--replay-diverge", action="append", default=[])
    args = ap.parse_args()
    if not shutil.which("spin"):
        print("SKIP: spin is not installed (Debian package spin); the model is not checked")
        return 77
    os.makedirs(args.work, exist_ok=True)
    for f in os.listdir(args.work):
        if f.startswith("pan") or f.startswith("model.pml"):
            os.unlink(os.path.join(args.work, f))
    model = os.path.join(args.work, "model.pml")
    run([sys.executable, GEN, "model", "--scenario", args.scenario, "--spec-dir", args.spec_dir,
         "--out", model], None, "fsm_promela.py model")
    t0 = time.monotonic()
    run(["spin", "-a", "model.pml"], args.work, "spin -a")
    # -O0: pan.c is large (every cell of both machines) and -O2 takes minutes to compile for
    # seconds of search. COLLAPSE stores states compressed (exact, not bitstate): a third of
    # the memory for about the same time.
    run(args.cc + ["-O0", "-DSAFETY", "-DCOLLAPSE", "-o", "pan", "pan.c"], args.work,
        "compiling pan.c")
    t1 = time.monotonic()
    r = subprocess.run(["./pan", "-m200000"], cwd=args.work, capture_output=True, text=True)
    t2 = time.monotonic()
    out = r.stdout
    m = re.search(r"errors: (\d+)", out)
    if not m:
        sys.exit("pan gave no verdict (exit %d):\n%s%s" % (r.returncode, out, r.stderr))
    errors = int(m.group(1))
    stored = re.search(r"([\d.e+]+) states, stored", out).group(1)
    depth = re.search(r"depth reached (\d+)", out).group(1)
    vec = re.search(r"State-vector (\d+) byte", out).group(1)
    mem = re.search(r"([\d.]+)\s+total actual memory usage", out)
    print("spin: %s states stored, depth %s, state vector %s bytes, %s MB, search %.1f s "
          "(spin -a + cc %.1f s), errors: %d"
          % (stored, depth, vec, mem.group(1) if mem else "?", t2 - t1, t1 - t0, errors))
    if errors == 0:
        reach = arm_reach(model, out)
        print("cells' alternatives reached by the search (cells with equal decisions in a state "
              "count once): " + ", ".join("%s %d/%d" % (k, v[1], v[0]) for k, v in reach.items()))
    if "Search not completed" in out and errors == 0:
        sys.exit("pan did not complete the search:\n" + out)
    for line in out.splitlines():
        if line.startswith("pan:") and "wrote" not in line:
            print(line)
    if errors and not os.path.exists(model + ".trail"):
        sys.exit("pan reported an error but wrote no trail")

    if not args.expect_violation:
        if errors:
            subprocess.run([sys.executable, TRAIL, "--model", model, "--spec-dir", args.spec_dir])
            print("FAIL: the model violates a property (counterexample above)")
            return 1
        print("PASS: no deadlock, sessions end idle, never both VMs running, every cancel answered")
        return 0

    if not errors:
        print("FAIL: the broken fixture passed the model check; the check cannot fail")
        return 1
    status = 0
    for tool, want in [(t, 0) for t in args.replay_same] + [(t, 1) for t in args.replay_diverge]:
        r = subprocess.run([sys.executable, TRAIL, "--model", model, "--spec-dir", args.spec_dir,
                            "--out", model + ".events", "--replay", tool],
                           capture_output=True, text=True)
        print(r.stdout.rstrip())
        if r.returncode != want:
            print("FAIL: %s: exit %d, expected %d (%s)" % (os.path.basename(tool), r.returncode, want,
                  "reproduce the counterexample" if want == 0 else "diverge from it"))
            status = 1
    if status == 0:
        print("PASS: the broken fixture is caught, and its counterexample replays in C")
    return status


if __name__ == "__main__":
    sys.exit(main())
