#!/usr/bin/env python3
"""Print, last in CI's output, which steps failed, their headline figures and the tail of every
failed test's log.

CI keeps only the end of what .ci/run prints, so a failure named in the middle of a long run
would be lost; this puts it where it is read.
Usage: summary.py STEP=RC... -- [build/ci-STEP.log...] [TESTLOG.json...]
"""
import json
import os
import re
import sys

TAIL = 60
# The lines of each step's output worth repeating at the end.
FIGURES = re.compile(r"^(total +\d+/\d+|\d+ passed, \d+ failed|sweep: |Ok: |Fail: |Timeout: |"
                     r"  lines\.+:|  functions\.+:)")


def figures(path):
    """The headline lines of one step's log (build/ci-STEP.log)."""
    step = os.path.basename(path)[len("ci-"):-len(".log")]
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip()
        if not FIGURES.match(line):
            continue
        if line.startswith("total"):
            line = "spec coverage, transitions failures pending rejections ignores guards:" + \
                line[len("total"):]
        print("  %-14s %s" % (step, re.sub(r"\s+", " ", line.strip())))


def main(argv):
    sep = argv.index("--") if "--" in argv else len(argv)
    steps, files = argv[:sep], argv[sep + 1:]
    logs = [f for f in files if f.endswith(".json")]
    print("== ferry CI summary ==")
    for step in steps:
        name, _, rc = step.partition("=")
        print("  %-14s %s" % (name, "ok" if rc == "0" else "FAILED (exit %s)" % rc))
    print("figures:")
    for path in files:
        if path.endswith(".log") and os.path.exists(path):
            figures(path)
    failed = 0
    for path in logs:
        if not os.path.exists(path):
            continue
        for line in open(path, encoding="utf-8", errors="replace"):
            r = json.loads(line)
            if r["result"] in ("OK", "EXPECTEDFAIL", "SKIP"):
                continue
            failed += 1
            print("\n-- %s: %s %s after %.1f s (%s)" %
                  (os.path.basename(path), r["name"], r["result"], r["duration"],
                   " ".join(r.get("command", []))[:300]))
            out = (r.get("stdout") or "") + (r.get("stderr") or "")
            for l in out.splitlines()[-TAIL:]:
                print("   | " + l)
    print("\n%d failed test%s in %s" % (failed, "" if failed == 1 else "s",
                                          ", ".join(os.path.basename(p) for p in logs)))


if __name__ == "__main__":
    main(sys.argv[1:])
