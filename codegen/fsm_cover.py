# SPDX-License-Identifier: MIT
"""Spec coverage: merges the count files src/fsm/cover.c writes (FERRY_FSM_COVERAGE=DIR, one
file per process) and reports, per machine, the share of transition arms, failure paths,
pending paths, rejected and ignored cells and guard outcomes that ran, with what never did;
writes <machine>.cover.dot/.svg with never-taken edges red and dashed, and <machine>.cover.txt
with everything that never ran.

    fsmc.py coverage --out-dir DIR --counts DIR [--fresh] [--run PROGRAM]... [--strict] SPEC...

Exit status 1 when no counts exist, a --run program fails, or (--strict) something never ran.
"""

import os
import subprocess
import sys

MAX_LISTED = 20  # never-run items printed per machine; all of them go to <machine>.cover.txt
COLS = ("ok", "pending", "failed", "ignored", "rejected", "gtrue", "gfalse")


def read_counts(counts_dir):
    """{(machine, hash): {arm: {col: n}}} summed over every count file, and warnings."""
    merged, files, warnings = {}, 0, []
    if not os.path.isdir(counts_dir):
        return merged, files, warnings
    for fn in sorted(os.listdir(counts_dir)):
        if not (fn.startswith("fsm-cover-") and fn.endswith(".txt")):
            continue
        files += 1
        cur = None
        with open(os.path.join(counts_dir, fn), encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                w = line.split()
                if not w or w[0] == "ferry-fsm-cover":
                    continue
                if w[0] == "machine" and len(w) == 4:
                    cur = merged.setdefault((w[1], w[2]), {})
                elif w[0] == "arm" and len(w) == 2 + len(COLS) and cur is not None:
                    row = cur.setdefault(int(w[1]), dict.fromkeys(COLS, 0))
                    for k, v in zip(COLS, w[2:]):
                        row[k] += int(v)
                elif w[0] == "dropped":
                    warnings.append("%s: %s records dropped (out of memory)" % (fn, w[1]))
                else:
                    warnings.append("%s:%d: not a count record" % (fn, n))
    return merged, files, warnings


class Coverage:
    """One machine's coverage: what the templates and the report ask."""

    def __init__(self, fsmc, m, counts):
        model = fsmc.c_model(m, fsmc.spec_rel(m.path))
        idx = {id(a): i for i, (a, _n, _c) in enumerate(model["arms"]) if a is not None}
        zero = dict.fromkeys(COLS, 0)
        self.items = {k: [] for k in ("transitions", "failures", "pending", "rejections", "ignores", "guards")}
        self.hits = set()
        for s in m.states:
            for e in m.events:
                for a in m.cells[(s, e)]:
                    c = counts.get(idx[id(a)], zero)
                    g = "[%s]" % a.guard if a.guard else ""
                    where = "%s × %s%s (line %d)" % (s, e, g, a.line)
                    if a.kind == "reject":
                        self.items["rejections"].append((where, c["rejected"] > 0))
                    elif a.kind == "ignore":
                        self.items["ignores"].append((where, c["ignored"] > 0))
                    else:
                        self.items["transitions"].append((where + " → " + a.to, c["ok"] + c["pending"] > 0))
                        if c["ok"]:
                            self.hits.add((s, e, "ok", a.to, fsmc._dot_label(a)))
                        if a.action and m.action_fails(a.action) and a.on_error:
                            self.items["failures"].append((where + " / %s fails → %s" % (a.action, a.on_error),
                                                           c["failed"] > 0))
                            if c["failed"]:
                                self.hits.add((s, e, "error", a.on_error, a.action))
                        if a.pending:
                            self.items["pending"].append((where + " / %s pending → %s" % (a.action, a.pending),
                                                          c["pending"] > 0))
                            if c["pending"]:
                                self.hits.add((s, e, "pending", a.pending, a.action))
                    if a.guard and a.guard != "else":
                        self.items["guards"].append((where + " true", c["gtrue"] > 0))
                        self.items["guards"].append((where + " false", c["gfalse"] > 0))

    def hit(self, f, e, style, t, lab):
        return (f, e, style, t, lab) in self.hits

    def share(self, kind):
        v = self.items[kind]
        return sum(1 for _w, ok in v if ok), len(v)

    def missing(self):
        return [(k, w) for k, v in self.items.items() for w, ok in v if not ok]

    def summary(self):
        parts = []
        for k in self.items:
            h, n = self.share(k)
            if n:
                parts.append("%s %d/%d" % (k, h, n))
        return ", ".join(parts)


def _pct(h, n):
    return "%d/%d %5.1f%%" % (h, n, 100.0 * h / n) if n else "-"


def cmd_coverage(fsmc, args):
    machines, ok = fsmc.load_all(args.spec)
    if not ok:
        return 1
    os.makedirs(args.counts, exist_ok=True)
    if args.fresh:
        for fn in os.listdir(args.counts):
            if fn.startswith("fsm-cover-") and fn.endswith(".txt"):
                os.unlink(os.path.join(args.counts, fn))
    for prog in args.run:
        env = dict(os.environ, FERRY_FSM_COVERAGE=os.path.abspath(args.counts))
        r = subprocess.run([prog], env=env, stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            print("coverage: %s exited %d" % (prog, r.returncode))
            return 1
    counts, files, warnings = read_counts(args.counts)
    for w in warnings:
        print("coverage: warning: %s" % w)
    if not files:
        print("coverage: no count files in %s: run the tests with FERRY_FSM_COVERAGE=%s" % (args.counts, args.counts))
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    kinds = ("transitions", "failures", "pending", "rejections", "ignores", "guards")
    print("spec coverage from %d count file(s) in %s" % (files, args.counts))
    print("%-12s" % "machine" + "".join("%17s" % k for k in kinds))
    total = {k: [0, 0] for k in kinds}
    full = True
    for m in machines:
        for (name, h) in counts:
            if name == m.name and h != m.hash:
                print("coverage: warning: ignoring %s counts recorded with spec hash %s (the spec is %s)"
                      % (name, h, m.hash))
        cov = Coverage(fsmc, m, counts.get((m.name, m.hash), {}))
        row = "%-12s" % m.name
        for k in kinds:
            hits, n = cov.share(k)
            total[k][0] += hits
            total[k][1] += n
            row += "%17s" % _pct(hits, n)
        print(row)
        missing = cov.missing()
        for k, w in missing[:MAX_LISTED]:
            print("    never: %-11s %s" % (k, w))
        if len(missing) > MAX_LISTED:
            print("    ... and %d more in %s/%s.cover.txt" % (len(missing) - MAX_LISTED, args.out_dir, m.name))
        full = full and not missing
        fsmc.write_if_changed(os.path.join(args.out_dir, "%s.cover.txt" % m.name),
                              "%s: %s\n" % (m.name, cov.summary())
                              + "".join("never: %-11s %s\n" % (k, w) for k, w in missing))
        dot, _mmd, _md = fsmc.gen_docs(m, coverage=cov)
        fsmc.write_if_changed(os.path.join(args.out_dir, "%s.cover.dot" % m.name), dot)
        try:
            svg = fsmc.render_svg(dot).decode()
            fsmc.write_if_changed(os.path.join(args.out_dir, "%s.cover.svg" % m.name), svg)
        except SystemExit as e:
            print("coverage: %s" % e)
    print("%-12s" % "total" + "".join("%17s" % _pct(*total[k]) for k in kinds))
    print("diagrams: %s/<machine>.cover.svg (never-taken transitions red and dashed)" % args.out_dir)
    sys.stdout.flush()
    return 1 if args.strict and not full else 0
