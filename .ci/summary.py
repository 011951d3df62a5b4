#!/usr/bin/env python3
"""Print, last in CI's output, which steps failed and the tail of every failed test's log.

CI keeps only the end of what .ci/run prints, so a failure named in the middle of a long run
would be lost; this puts it where it is read. Usage: summary.py STEP=RC... -- TESTLOG.json...
"""
import json
import os
import sys

TAIL = 60


def main(argv):
    sep = argv.index("--") if "--" in argv else len(argv)
    steps, logs = argv[:sep], argv[sep + 1:]
    print("== ferry CI summary ==")
    for step in steps:
        name, _, rc = step.partition("=")
        print("  %-14s %s" % (name, "ok" if rc == "0" else "FAILED (exit %s)" % rc))
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
