# SPDX-License-Identifier: MIT
"""Model-based test cases from a spec, for tests/fsm/mbt.{c,h}.

`fsmc.py tests --out-dir DIR SPEC...` writes `<machine>_mbt.c`: a table of cases that run
against the real generated tables through fsm_dispatch. Each case is a shortest event path
from the initial state (BFS over every transition outcome: success, failure, pending) to a
target, then the target step:

  transition   every transition arm (each guarded alternative), its action succeeding
  reject       every rejecting arm (named, default, guarded else): errno and state unchanged
  ignore       every ignoring arm: state unchanged
  failure      every arm whose action can fail, the action steered to fail once: on_error
  pending      every pending action: the in-flight state, then each completion event

Every step records the guard outcomes it needs, in the order the runtime asks them (earlier
alternatives false, the chosen one true), and what its action must return, so a steering
harness forces them. Cases whose steps are a prefix of another case's are merged into it
(XState's deduplicatePaths); the longer case names every target it covers.
"""

from collections import deque

MAX_GUARDS = 8  # tests/fsm/mbt.h MBT_MAX_GUARDS


def _arm_index(fsmc, m):
    """Machine-wide index of every arm object, as the generated C lays them out."""
    model = fsmc.c_model(m, fsmc.spec_rel(m.path))
    return {id(a): i for i, (a, _nxt, _cell) in enumerate(model["arms"]) if a is not None}


def _guards(chain, k):
    out = [(a.guard, False) for a in chain[:k] if a.guard and a.guard != "else"]
    if chain[k].guard and chain[k].guard != "else":
        out.append((chain[k].guard, True))
    return out


class Step:
    """One dispatch: event, the arm that must decide, steering and expectations."""

    def __init__(self, m, idx, s, e, k, act):
        chain = m.cells[(s, e)]
        a = chain[k]
        self.state, self.event, self.arm_obj = s, e, a
        self.arm = idx[id(a)]
        self.guards = _guards(chain, k)
        self.action = a.action if a.kind == "transition" else None
        self.act = act  # none, ok, fail, pending
        if a.kind == "reject":
            self.result, self.err, self.to = "REJECTED", "-FERRY_ERRNO_%s" % a.error.upper(), s
        elif a.kind == "ignore":
            self.result, self.err, self.to = "IGNORED", "0", s
        elif act == "fail":
            self.result, self.err, self.to = "FAILED", "MBT_ERR_ANY", a.on_error
        elif act == "pending":
            self.result, self.err, self.to = "PENDING", "FSM_PENDING", a.pending
        else:
            self.result, self.err, self.to = "OK", "0", a.to
        if len(self.guards) > MAX_GUARDS:
            raise SystemExit("fsm_testgen: (%s, %s) has more than %d guards" % (s, e, MAX_GUARDS))

    def key(self):
        return (self.event, self.arm, self.act)

    def label(self):
        g = "".join("[%s%s]" % ("" if v else "!", n) for n, v in self.guards)
        act = "" if self.act in ("none", "ok") else " (%s)" % self.act
        return "%s×%s%s%s" % (self.state, self.event, g, act)


def _outcomes(m, a):
    """The outcomes a transition arm can be steered to: (act, target state)."""
    if a.action is None:
        return [("none", a.to)]
    out = [("ok", a.to)]
    if m.action_fails(a.action) and a.on_error:
        out.append(("fail", a.on_error))
    if a.pending:
        out.append(("pending", a.pending))
    return out


def shortest_paths(m, idx):
    """BFS from the initial state over every arm outcome: state -> [Step] (shortest, with
    ties broken by state, event, alternative and outcome order)."""
    paths = {m.initial: []}
    q = deque([m.initial])
    while q:
        s = q.popleft()
        for e in m.events:
            chain = m.cells[(s, e)]
            for k, a in enumerate(chain):
                if a.kind != "transition":
                    continue
                for act, t in _outcomes(m, a):
                    if t not in paths:
                        paths[t] = paths[s] + [Step(m, idx, s, e, k, act)]
                        q.append(t)
    return paths


def cases(fsmc, m):
    """The deduplicated cases: [(kind, [targets], [Step])]."""
    idx = _arm_index(fsmc, m)
    paths = shortest_paths(m, idx)
    raw = []
    for s in m.states:
        for e in m.events:
            chain = m.cells[(s, e)]
            for k, a in enumerate(chain):
                if a.kind == "reject":
                    st = Step(m, idx, s, e, k, "none")
                    raw.append(("reject", paths[s] + [st]))
                elif a.kind == "ignore":
                    raw.append(("ignore", paths[s] + [Step(m, idx, s, e, k, "none")]))
                else:
                    for act, _t in _outcomes(m, a):
                        kind = {"none": "transition", "ok": "transition", "fail": "failure",
                                "pending": "pending"}[act]
                        st = Step(m, idx, s, e, k, act)
                        if act != "pending":
                            raw.append((kind, paths[s] + [st]))
                            continue
                        # the in-flight state, then each completion event's first transition arm
                        raw.append((kind, paths[s] + [st]))
                        comps = (m.action_pending(a.action) or {}).get("completions", [])
                        for c in comps if isinstance(comps, list) else [comps]:
                            cchain = m.cells[(a.pending, c)]
                            ck = next(i for i, x in enumerate(cchain) if x.kind == "transition")
                            ca = cchain[ck]
                            cact = "none" if ca.action is None else "ok"
                            raw.append(("pending", paths[s] + [st, Step(m, idx, a.pending, c, ck, cact)]))
    # dedup: identical step sequences collapse; a prefix of a longer case merges into it
    keyed = []
    for kind, steps in raw:
        keyed.append((kind, steps, tuple(x.key() for x in steps)))
    out = []
    for i, (kind, steps, key) in enumerate(keyed):
        absorbed = False
        for j, (_k2, _s2, key2) in enumerate(keyed):
            if j == i:
                continue
            if len(key2) > len(key) and key2[:len(key)] == key:
                absorbed = True
                break
            if key2 == key and j < i:
                absorbed = True
                break
        if not absorbed:
            out.append([kind, [], steps, key])
    for kind, steps, key in keyed:
        target = "%s %s" % (kind, steps[-1].label())
        for c in out:
            if c[3][:len(key)] == key:
                if target not in c[1]:
                    c[1].append(target)
                break
    return [(c[0], c[1], c[2]) for c in out], len(raw)


def _c(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gen_tests(fsmc, m):
    """The C text of <machine>_mbt.c."""
    P, p = m.name.upper(), m.name
    cs, n_raw = cases(fsmc, m)
    L = []
    w = L.append
    w("/* generated from %s by codegen/fsm_testgen.py; do not edit */" % fsmc.spec_rel(m.path))
    w("/* %d model-based cases (%d targets; prefixes merged into longer cases) */" % (len(cs), n_raw))
    w('#include "mbt.h"')
    w('#include "%s_fsm.h"' % p)
    w('#include "util/status.h"')
    w("")
    for i, (kind, targets, steps) in enumerate(cs):
        w("static const struct mbt_step case_%d[] = {" % i)
        for st in steps:
            g = ", ".join("{%d, %s}" % (m.guards.index(n), "true" if v else "false") for n, v in st.guards)
            w("        {.event = %s_E_%s, .from = %s_S_%s, .arm = %d, .n_guards = %d,%s" % (
                P, st.event.upper(), P, st.state.upper(), st.arm, len(st.guards),
                (" .guards = {%s}," % g) if g else ""))
            w("         .action = %s, .act = MBT_ACT_%s, .result = FSM_RESULT_%s, .ret = %s, .to = %s_S_%s}, /* %s */" % (
                _c(st.action) if st.action else "NULL", st.act.upper(), st.result, st.err, P, st.to.upper(),
                st.label()))
        w("};")
        w("static const char *const case_%d_targets[] = {%s, NULL};" % (i, ", ".join(_c(t) for t in targets)))
        w("")
    w("static const struct mbt_case cases[] = {")
    for i, (kind, targets, steps) in enumerate(cs):
        w("        {.kind = %s, .targets = case_%d_targets, .steps = case_%d, .n_steps = %d}," % (
            _c(kind), i, i, len(steps)))
    w("};")
    w("")
    w("const struct mbt_suite %s_mbt = {" % p)
    w("        .machine = &%s_machine," % p)
    w("        .cases = cases,")
    w("        .n_cases = %d," % len(cs))
    w("        .n_targets = %d," % n_raw)
    w("};")
    return "\n".join(L) + "\n"


def cmd_tests(fsmc, args):
    import os
    machines, ok = fsmc.load_all(args.spec)
    if not ok:
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    for m in machines:
        fsmc.write_if_changed(os.path.join(args.out_dir, "%s_mbt.c" % m.name), gen_tests(fsmc, m))
    return 0
