#!/usr/bin/env python3
"""The model generator refuses a scenario that does not fit the specs, naming the entry: a
renamed state, event, action or guard in a spec must fail the model check's generation, not
silently drop part of the model. Also: the generated model declares every cell of both machines.

    check_scenario.py SCENARIO SPEC_DIR
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "..", "codegen", "fsm_promela.py")
sys.path.insert(0, os.path.join(HERE, "..", "..", "codegen"))
import fsmc  # noqa: E402

scenario, spec_dir = sys.argv[1], sys.argv[2]
text = open(scenario, encoding="utf-8").read()
failures = []

# (what to replace, with what, what the error must name)
BREAKS = [
    ("{side: src, call: prepare_source,", "{side: src, call: prepare_sauce,", "prepare_sauce"),
    ("expect: [source_prepared]}", "expect: [source_prepped]}", "source_prepped"),
    ("steps: [{vm: save, fail: error}]", "steps: [{vm: snapshot, fail: error}]", "snapshot"),
    ("vm_finalized: \"vm_st[SIDE] == S(vm, migration_finalized)\"",
     "vm_finalized: \"vm_st[SIDE] == S(vm, migration_finalised)\"", "migration_finalised"),
    ("  finalize_migration_stop: finalize_done", "  finalize_migration_stop: stop_done", "stop_done"),
    ("    is_migratable: \"true\"", "    is_portable: \"true\"", "is_portable"),
]

with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "model.pml")
    r = subprocess.run([sys.executable, GEN, "model", "--scenario", scenario, "--spec-dir", spec_dir,
                        "--out", out], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append("the scenario itself: exit %d: %s" % (r.returncode, r.stderr.strip()))
    else:
        pml = open(out, encoding="utf-8").read()
        for name in ("migration", "vm"):
            m, _ = fsmc.build(os.path.join(spec_dir, name + ".yaml"))
            body = pml[pml.index("inline %s_decide" % name):]
            body = body[:body.index("\n}\n")]
            for s in m.states:
                block = re.search(r":: %s_st\[side\] == %s_S_%s ->\n(.*?)\n        fi\n" % (name, name, s),
                                  body, re.S)
                evs = set(re.findall(r"ev == %s_E_(\w+)" % name, block.group(1))) if block else set()
                missing = set(m.events) - evs
                if missing:
                    failures.append("%s state %s: no cell for %s" % (name, s, sorted(missing)))
    for old, new, name in BREAKS:
        if old not in text:
            failures.append("scenario no longer has %r" % old)
            continue
        bad = os.path.join(tmp, "bad.yaml")
        with open(bad, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new, 1))
        r = subprocess.run([sys.executable, GEN, "model", "--scenario", bad, "--spec-dir", spec_dir,
                            "--out", out], capture_output=True, text=True)
        if r.returncode != 1 or name not in r.stderr:
            failures.append("%s: exit %d, %s" % (name, r.returncode, r.stderr.strip()))

for f in failures:
    print("FAIL " + f)
print("%d passed, %d failed" % (len(BREAKS) + 1 - len(failures), len(failures)))
sys.exit(1 if failures else 0)
