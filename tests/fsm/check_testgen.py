#!/usr/bin/env python3
"""Checks the model-based cases codegen/fsm_testgen.py makes for each spec given, without C:
every arm is the target of some case, with every outcome it has (success, failure, pending,
each completion after pending); every case starts in the initial state and each step starts
where the previous one ended; no case is a prefix of another. Prints "N passed, N failed".

    check_testgen.py SPEC...
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "codegen"))
import fsmc  # noqa: E402
import fsm_testgen  # noqa: E402

passed = failed = 0
for path in sys.argv[1:]:
    m, problems = fsmc.build(path)
    if problems:
        print("FAIL %s: does not compile" % path)
        failed += 1
        continue
    cases, n_targets = fsm_testgen.cases(fsmc, m)
    problems = []
    seen = set()
    keys = []
    for kind, targets, steps in cases:
        state = m.initial
        for st in steps:
            if st.state != state:
                problems.append("case %s: step %s starts in %s" % (targets[0], st.label(), state))
            seen.add((st.state, st.event, id(st.arm_obj), st.act))
            state = st.to
        keys.append(tuple(s.key() for s in steps))
    for i, k in enumerate(keys):
        for j, k2 in enumerate(keys):
            if i != j and k2[:len(k)] == k:
                problems.append("case %d is a prefix of case %d" % (i, j))
    for s in m.states:
        for e in m.events:
            for a in m.cells[(s, e)]:
                wants = ["none"] if a.kind != "transition" else [act for act, _t in fsm_testgen._outcomes(m, a)]
                for act in wants:
                    if (s, e, id(a), act) not in seen:
                        problems.append("(%s, %s) line %d outcome %s is in no case" % (s, e, a.line, act))
    if problems:
        failed += 1
        for p in problems[:20]:
            print("FAIL %s: %s" % (m.name, p))
    else:
        passed += 1
        print("%s: %d cases cover %d targets" % (m.name, len(cases), n_targets))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
