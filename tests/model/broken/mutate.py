#!/usr/bin/env python3
"""The broken fixture: a copy of spec/migration.yaml with one cell mutated, and of spec/vm.yaml
as it is, written into OUT_DIR. The mutation: cleanup in `finalized` releases the session but
stays in `finalized` instead of returning to `idle`, so no session ever ends idle after a
finalize. The model checker must find it (tests/model/meson.build, test model-broken).

    mutate.py MIGRATION_YAML VM_YAML OUT_DIR

Made from the live spec at build time, so the fixture follows the spec's other changes; the
mutation fails loudly when the spec no longer has the cell in that shape.
"""
import os
import re
import shutil
import sys

mig, vm, out = sys.argv[1:4]
text = open(mig, encoding="utf-8").read()
pat = re.compile(r"(  - from: finalized\n    on: cleanup\n(?:    .*\n)*?        action: release_session\n"
                 r"        to: )idle\n")
new, n = pat.subn(r"\1finalized  # MUTATED by tests/model/broken/mutate.py: was idle\n", text)
if n != 1:
    sys.exit("mutate.py: the (finalized, cleanup) transition to idle was not found once in %s" % mig)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "migration.yaml"), "w", encoding="utf-8") as f:
    f.write(new)
shutil.copyfile(vm, os.path.join(out, "vm.yaml"))
