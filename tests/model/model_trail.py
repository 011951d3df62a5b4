#!/usr/bin/env python3
"""Turns a Spin counterexample into an event sequence and replays it through the C runtime.

    model_trail.py --model MODEL.pml --spec-dir DIR [--session NAME --vm NAME]
                   [--out EVENTS] [--replay TOOL]...

Runs `spin -T -t MODEL.pml` (the trail MODEL.pml.trail must exist), keeps the `@fsm` lines
every dispatch of the model prints, names their numbers with the specs (the same numbering as
the generated C), prints the sequence and writes it to EVENTS, one dispatch a line:

    <machine> <instance> <from> <event> <arm> <result> <to>

Then each TOOL (tests/model/model_replay.c, built against some tables) replays EVENTS through
fsm_dispatch and reports whether the C runtime reaches the same states. Exit status: 0 when
every TOOL reproduced the run, 1 when one diverged (it prints where), 2 on other errors.
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "codegen"))
import fsmc  # noqa: E402

RESULTS = ["ok", "pending", "failed", "ignored", "rejected"]
SIDES = ["src", "dst"]


def events(model, machines):
    """The dispatches of the trail, named: [(machine, instance, from, event, arm, result, to)]."""
    r = subprocess.run(["spin", "-T", "-t", os.path.basename(model)], cwd=os.path.dirname(model) or ".",
                       capture_output=True, text=True)
    if r.returncode != 0 and "@fsm" not in r.stdout:
        raise SystemExit("spin -t failed:\n" + r.stdout + r.stderr)
    out, log = [], []
    for line in r.stdout.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "@fsm":
            m = machines[int(f[1])]
            side, frm, ev, arm, res, to = (int(x) for x in f[2:8])
            out.append((m.name, "%s-%s" % (m.name, SIDES[side]), m.states[frm], m.events[ev], arm,
                        RESULTS[res], m.states[to]))
            log.append("  %-14s %-20s %-22s arm %d %-8s -> %s" % out[-1][1:])
        elif f[0] == "@call":
            log.append("orchestrator: %s.%s" % (SIDES[int(f[1])], machines[0].events[int(f[2])]))
        elif f[0] == "@abort":
            log.append("orchestrator: abort (%s)" % ("after commit" if f[1] == "1" else "rollback"))
        elif "assertion violated" in line or "invalid end state" in line or line.startswith("spin: "):
            log.append(line.strip())
    return out, log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--spec-dir", required=True)
    ap.add_argument("--session", default="migration")
    ap.add_argument("--vm", default="vm")
    ap.add_argument("--out")
    ap.add_argument("--replay", action="append", default=[])
    args = ap.parse_args()
    machines = []
    for name in (args.session, args.vm):
        m, problems = fsmc.build(os.path.join(args.spec_dir, name + ".yaml"))
        if problems:
            fsmc.report(os.path.join(args.spec_dir, name + ".yaml"), problems)
            return 2
        machines.append(m)
    seq, log = events(os.path.abspath(args.model), machines)
    print("counterexample: %d dispatches" % len(seq))
    print("\n".join(log))
    out = args.out or os.path.abspath(args.model) + ".events"
    with open(out, "w", encoding="utf-8") as f:
        for e in seq:
            f.write("%s %s %s %s %d %s %s\n" % e)
    status = 0
    for tool in args.replay:
        r = subprocess.run([tool, out], capture_output=True, text=True)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        if r.returncode == 1:
            status = max(status, 1)
        elif r.returncode != 0:
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
