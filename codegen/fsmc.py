#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""fsmc: ferry's state-machine spec compiler.

    fsmc.py check SPEC...               validate; one `FILE:LINE: message` per problem
    fsmc.py ir SPEC                     the JSON IR on stdout
    fsmc.py c --out-dir DIR SPEC...     C tables and prototypes (build directory)
    fsmc.py docs --out-dir DIR SPEC...  DOT, SVG, Mermaid, Markdown matrix and IR per machine
    fsmc.py summary --out-dir DIR SPEC...  a line per machine and where its diagrams are
    fsmc.py tests --out-dir DIR SPEC...    model-based test cases <machine>_mbt.c (fsm_testgen.py)
    fsmc.py coverage --out-dir DIR --counts DIR SPEC...
                                        spec coverage from FERRY_FSM_COVERAGE counts (fsm_cover.py)
    fsmc.py docs --check --out-dir DIR SPEC...
                                        exit 1 naming every file in DIR that a fresh
                                        generation would change

Files are rewritten only when their content changes, so the build does not redo work.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import deque

import jinja2
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsm_cover  # noqa: E402
import fsm_testgen  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_PATH = os.path.join(HERE, "..", "spec", "schema.yaml")
TEMPLATES = os.path.join(HERE, "templates")

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
ERROR_CLASSES = [
    "cancelled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
    "already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
    "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss",
    "unauthenticated",
]
STAY = "stay"


class SpecError(Exception):
    """A problem located in a spec file."""

    def __init__(self, line, message):
        super().__init__(message)
        self.line = line
        self.message = message


# ---------------------------------------------------------------------------------------------
# YAML with line numbers


class LDict(dict):
    """A mapping that remembers the line of itself and of each key."""

    line = 0
    lines = None

    def key_line(self, key):
        return (self.lines or {}).get(key, self.line)


class LList(list):
    line = 0
    lines = None

    def item_line(self, i):
        return self.lines[i] if self.lines and i < len(self.lines) else self.line


class LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    d = LDict()
    d.line = node.start_mark.line + 1
    d.lines = {}
    for knode, vnode in node.value:
        key = loader.construct_object(knode, deep=True)
        if key in d:
            raise SpecError(knode.start_mark.line + 1, "duplicate key '%s'" % key)
        d[key] = loader.construct_object(vnode, deep=True)
        d.lines[key] = knode.start_mark.line + 1
    return d


def _construct_sequence(loader, node):
    lst = LList(loader.construct_object(n, deep=True) for n in node.value)
    lst.line = node.start_mark.line + 1
    lst.lines = [n.start_mark.line + 1 for n in node.value]
    return lst


# YAML 1.1 reads on/off/yes/no as booleans, which would turn every `on:` key into True:
# specs take only true and false.
LineLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
LineLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return yaml.load(text, Loader=LineLoader), text
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise SpecError(mark.line + 1 if mark else 1, "YAML: %s" % (e.problem or e))


# ---------------------------------------------------------------------------------------------
# Schema validation, driven by spec/schema.yaml


class Schema:
    def __init__(self, path=SCHEMA_PATH):
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=LineLoader)
        self.root = doc["root"]
        self.types = doc["types"]

    def validate(self, value, texpr, where, line, problems):
        if isinstance(texpr, str) and texpr in self.types:
            self._record(value, texpr, where, line, problems)
        elif texpr == "str":
            if not isinstance(value, str):
                problems.append((line, "%s must be a string" % where))
        elif texpr == "bool":
            if not isinstance(value, bool):
                problems.append((line, "%s must be true or false" % where))
        elif texpr == "name":
            if not isinstance(value, str) or not NAME_RE.match(value):
                problems.append((line, "%s must be a snake_case name, not %r" % (where, value)))
        elif texpr == "names":
            items = value if isinstance(value, list) else [value]
            if not items:
                problems.append((line, "%s must name at least one" % where))
            for v in items:
                if v != "*" and (not isinstance(v, str) or not NAME_RE.match(v)):
                    problems.append((line, "%s must be snake_case names or '*', not %r" % (where, v)))
        elif isinstance(texpr, dict) and "map" in texpr:
            if not isinstance(value, dict):
                problems.append((line, "%s must be a mapping" % where))
                return
            for k, v in value.items():
                kline = value.key_line(k) if isinstance(value, LDict) else line
                if not isinstance(k, str) or not NAME_RE.match(k):
                    problems.append((kline, "%s: '%s' is not a snake_case name" % (where, k)))
                self.validate(LDict() if v is None else v, texpr["map"], "%s '%s'" % (texpr["map"], k),
                              kline, problems)
        elif isinstance(texpr, dict) and "list" in texpr:
            if not isinstance(value, list):
                problems.append((line, "%s must be a list" % where))
                return
            for i, v in enumerate(value):
                iline = value.item_line(i) if isinstance(value, LList) else line
                self.validate(v, texpr["list"], texpr["list"], iline, problems)
        elif isinstance(texpr, dict) and "enum" in texpr:
            if value not in texpr["enum"]:
                problems.append((line, "%s must be one of %s, not %r" % (where, ", ".join(texpr["enum"]), value)))
        else:  # pragma: no cover - a broken schema file
            raise RuntimeError("schema: unknown type expression %r" % (texpr,))

    def _record(self, value, tname, where, line, problems):
        t = self.types[tname]
        if value is None:
            value = LDict()
        if not isinstance(value, dict):
            problems.append((line, "%s must be a mapping" % where))
            return
        keys = t.get("keys", {})
        for k in value:
            if k not in keys:
                kl = value.key_line(k) if isinstance(value, LDict) else line
                problems.append((kl, "unknown key '%s' in %s" % (k, where)))
        for k in t.get("required", []):
            if k not in value:
                problems.append((getattr(value, "line", line) or line, "%s is missing required key '%s'" % (where, k)))
        for k, v in value.items():
            if k in keys:
                kl = value.key_line(k) if isinstance(value, LDict) else line
                self.validate(v, keys[k], "'%s'" % k, kl, problems)


# ---------------------------------------------------------------------------------------------
# The model


class Arm:
    """One decision for a cell: a transition (maybe guarded), ignore or reject."""

    def __init__(self, kind, line, guard=None, action=None, to=None, on_error=None,
                 error=None, message=None, doc=None, origin="transition"):
        self.kind = kind
        self.line = line
        self.guard = guard  # guard name, "else", or None
        self.action = action
        self.to = to
        self.on_error = on_error
        self.error = error
        self.message = message
        self.doc = doc
        self.origin = origin  # transition, cell or default
        self.pending = None


class Machine:
    def __init__(self, path, text, doc):
        self.path = path
        self.name = doc.get("machine")
        self.doc = (doc.get("doc") or "").strip()
        self.context = doc.get("context")
        self.hash = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.states = list((doc.get("states") or {}).keys())
        self.state_info = {k: (v or {}) for k, v in (doc.get("states") or {}).items()}
        self.state_line = {k: doc["states"].key_line(k) for k in self.states} if self.states else {}
        self.events = list((doc.get("events") or {}).keys())
        self.event_info = {k: (v or {}) for k, v in (doc.get("events") or {}).items()}
        self.event_line = {k: doc["events"].key_line(k) for k in self.events} if self.events else {}
        guards = doc.get("guards") or LDict()
        actions = doc.get("actions") or LDict()
        self.guards = list(guards.keys())
        self.guard_info = {k: (v or {}) for k, v in guards.items()}
        self.guard_line = {k: guards.key_line(k) for k in self.guards}
        self.actions = list(actions.keys())
        self.action_info = {k: (v or {}) for k, v in actions.items()}
        self.action_line = {k: actions.key_line(k) for k in self.actions}
        self.cells = {}  # (state, event) -> [Arm]
        self.cell_src = {}  # (state, event) -> (precedence, line, is_transition)
        self.initial = None
        self.inflight = set()

    def flag(self, s, f):
        return bool(self.state_info[s].get(f, False))

    def action_fails(self, a):
        return self.action_info.get(a, {}).get("fails", True)

    def action_pending(self, a):
        return self.action_info.get(a, {}).get("pending")


def _names(value):
    return list(value) if isinstance(value, list) else [value]


def build(path):
    """Loads, validates and checks one spec. Returns (machine, problems)."""
    problems = []
    try:
        doc, text = load_yaml(path)
    except SpecError as e:
        return None, [(e.line, e.message)]
    if not isinstance(doc, dict):
        return None, [(1, "a spec must be a mapping")]
    schema = Schema()
    schema.validate(doc, schema.root, "machine", 1, problems)
    if problems:
        return None, problems
    m = Machine(path, text, doc)
    stem = os.path.splitext(os.path.basename(path))[0]
    if m.name != stem:
        problems.append((doc.key_line("machine"), "machine '%s' must be named after its file '%s'" % (m.name, os.path.basename(path))))
    _check_names(m, doc, problems)
    if problems:
        return m, problems
    _decide_cells(m, doc, problems)
    if problems:
        return m, problems
    _check_actions(m, problems)
    _check_graph(m, problems)
    return m, problems


def _check_names(m, doc, problems):
    initials = [s for s in m.states if m.flag(s, "initial")]
    if len(initials) != 1:
        problems.append((doc.key_line("states"),
                         "exactly one initial state is required, found %d" % len(initials)))
    else:
        m.initial = initials[0]
    if not any(m.flag(s, "terminal") or m.flag(s, "rest") for s in m.states):
        problems.append((doc.key_line("states"), "no state is marked terminal or rest"))
    for s in m.states:
        if s in (STAY,):
            problems.append((m.state_line[s], "'%s' is reserved and cannot name a state" % s))
    for a in m.actions:
        p = m.action_pending(a)
        if p:
            if p["state"] not in m.states:
                problems.append((m.action_line[a], "unknown state '%s' in pending of action '%s'" % (p["state"], a)))
            else:
                m.inflight.add(p["state"])
            for c in _names(p["completions"]):
                if c not in m.events:
                    problems.append((m.action_line[a], "unknown event '%s' in completions of action '%s'" % (c, a)))
                elif m.event_info[c]["kind"] != "completion":
                    problems.append((m.action_line[a], "event '%s' ends pending action '%s' but is not of kind completion" % (c, a)))


def _expand_states(m, value, excl, line, what, problems):
    names = _names(value)
    if "*" in names:
        out = list(m.states)
    else:
        out = []
        for s in names:
            if s not in m.states:
                problems.append((line, "unknown state '%s' in '%s'" % (s, what)))
            else:
                out.append(s)
    for s in _names(excl) if excl is not None else []:
        if s not in m.states:
            problems.append((line, "unknown state '%s' in 'except'" % s))
        elif s in out:
            out.remove(s)
    return out, "*" in names


def _expand_events(m, value, line, problems):
    names = _names(value)
    if "*" in names:
        return list(m.events), True
    out = []
    for e in names:
        if e not in m.events:
            problems.append((line, "unknown event '%s' in 'on'" % e))
        else:
            out.append(e)
    return out, False


def _check_ref(m, kind, name, line, problems):
    known = {"state": m.states, "guard": m.guards, "action": m.actions}[kind]
    if name is not None and name not in known and not (kind == "state" and name == STAY):
        problems.append((line, "unknown %s '%s'" % (kind, name)))


def _check_error(err, line, problems):
    if err not in ERROR_CLASSES:
        problems.append((line, "unknown error class '%s'" % err))


def _kl(item, key, line):
    return item.key_line(key) if isinstance(item, LDict) and key in item else line


def _arm_from(m, item, line, guard, problems, where):
    """An arm from a transition or a guard alternative."""
    has_reject = "reject" in item
    has_ignore = item.get("ignore", False)
    has_to = "to" in item
    if has_reject + bool(has_ignore) + has_to != 1:
        choices = "'to', 'reject' or 'ignore'" if where.startswith(("a transition", "a guard")) else "'reject' or 'ignore'"
        problems.append((line, "%s needs exactly one of %s" % (where, choices)))
        return None
    if has_to:
        _check_ref(m, "state", item["to"], _kl(item, "to", line), problems)
        _check_ref(m, "action", item.get("action"), _kl(item, "action", line), problems)
        _check_ref(m, "state", item.get("on_error"), _kl(item, "on_error", line), problems)
        if "on_error" in item and "action" not in item:
            problems.append((_kl(item, "on_error", line), "'on_error' without an 'action' can never be taken"))
        return Arm("transition", line, guard=guard, action=item.get("action"), to=item["to"],
                   on_error=item.get("on_error"), doc=item.get("doc"))
    for k in ("action", "on_error"):
        if k in item:
            problems.append((line, "'%s' has no meaning on a %s arm" % (k, "reject" if has_reject else "ignore")))
    if has_reject:
        _check_error(item["reject"], _kl(item, "reject", line), problems)
        if "message" not in item:
            problems.append((_kl(item, "reject", line), "a reject needs a 'message'"))
        return Arm("reject", line, guard=guard, error=item["reject"], message=item.get("message", ""),
                   doc=item.get("doc"))
    return Arm("ignore", line, guard=guard, doc=item.get("doc"))


def _register(m, s, e, prec, line, arms, is_transition, problems):
    key = (s, e)
    old = m.cell_src.get(key)
    if old is not None:
        oprec, oline, otrans = old
        if oprec == prec:
            if otrans and is_transition:
                problems.append((line, "transitions at lines %d and %d can both fire for (%s, %s) "
                                       "without a declared guard order" % (oline, line, s, e)))
            else:
                problems.append((line, "cell (%s, %s) is decided twice (lines %d and %d)" % (s, e, oline, line)))
            return
        if oprec > prec:
            return
    m.cell_src[key] = (prec, line, is_transition)
    m.cells[key] = arms


def _resolve_stay(arms, s):
    out = []
    for a in arms:
        # a copy per cell: messages are specialised to their cell below
        b = Arm(a.kind, a.line, a.guard, a.action, a.to, a.on_error, a.error, a.message, a.doc, a.origin)
        if b.to == STAY:
            b.to = s
        if b.on_error == STAY:
            b.on_error = s
        out.append(b)
    return out


def _decide_cells(m, doc, problems):
    transitions = doc.get("transitions") or LList()
    for i, t in enumerate(transitions):
        line = transitions.item_line(i)
        states, swild = _expand_states(m, t["from"], t.get("except"), _kl(t, "from", line), "from", problems)
        if t["on"] not in m.events:
            problems.append((_kl(t, "on", line), "unknown event '%s' in 'on'" % t["on"]))
            continue
        if "guard" in t:
            for k in ("action", "to", "on_error"):
                if k in t:
                    problems.append((line, "'%s' belongs inside the guard's alternatives" % k))
            alts = t["guard"]
            arms = []
            if not alts:
                problems.append((line, "a guard needs at least one alternative"))
                continue
            for j, alt in enumerate(alts):
                aline = alts.item_line(j)
                is_else = alt.get("else", False)
                if is_else == ("when" in alt):
                    problems.append((aline, "a guard alternative needs exactly one of 'when' or 'else'"))
                    continue
                if is_else and j != len(alts) - 1:
                    problems.append((aline, "'else' must be the last alternative"))
                if not is_else:
                    _check_ref(m, "guard", alt["when"], aline, problems)
                arm = _arm_from(m, alt, aline, "else" if is_else else alt["when"], problems, "a guard alternative")
                if arm:
                    arms.append(arm)
            if not alts[-1].get("else", False):
                problems.append((alts.item_line(len(alts) - 1), "guard alternatives must end with 'else'"))
                continue
        else:
            arm = _arm_from(m, t, line, None, problems, "a transition")
            if arm is None:
                continue
            if arm.kind != "transition":
                problems.append((line, "ignore and reject belong in 'cells', not 'transitions'"))
                continue
            arms = [arm]
        for s in states:
            _register(m, s, t["on"], 1 if swild else 2, line, _resolve_stay(arms, s), True, problems)

    cells = doc.get("cells") or LList()
    for i, c in enumerate(cells):
        line = cells.item_line(i)
        states, swild = _expand_states(m, c["in"], c.get("except"), _kl(c, "in", line), "in", problems)
        events, ewild = _expand_events(m, c["on"], _kl(c, "on", line), problems)
        if "to" in c:
            problems.append((line, "a cell cannot transition; use 'transitions'"))
            continue
        arm = _arm_from(m, c, line, None, problems, "a cell")
        if arm is None:
            continue
        arm.origin = "cell"
        for s in states:
            for e in events:
                _register(m, s, e, 1 if (swild or ewild) else 2, line, _resolve_stay([arm], s), False, problems)

    default = doc.get("default")
    if default is not None:
        dline = doc.key_line("default")
        darm = _arm_from(m, default, dline, None, problems, "the default")
        if darm is not None and darm.kind == "transition":
            problems.append((dline, "the default must ignore or reject"))
            darm = None
    else:
        darm = None
    for s in m.states:
        for e in m.events:
            if (s, e) in m.cells:
                continue
            if darm is None:
                if default is None:
                    problems.append((m.state_line[s], "cell (%s, %s) has no decision and the machine has no default" % (s, e)))
                continue
            d = Arm(darm.kind, darm.line, error=darm.error, message=darm.message, origin="default")
            m.cells[(s, e)] = [d]
    # messages name their cell
    for (s, e), arms in m.cells.items():
        for a in arms:
            if a.message is not None:
                a.message = a.message.replace("{state}", s).replace("{event}", e)


def _check_actions(m, problems):
    for (s, e), arms in sorted(m.cells.items(), key=lambda kv: (m.states.index(kv[0][0]), m.events.index(kv[0][1]))):
        for a in arms:
            if a.kind != "transition" or a.action is None:
                continue
            if m.action_fails(a.action) and a.on_error is None:
                problems.append((a.line, "action '%s' can fail but the transition from '%s' on '%s' has no on_error" % (a.action, s, e)))
            p = m.action_pending(a.action)
            if p:
                a.pending = p["state"]
    seen = set()
    for a in m.actions:
        p = m.action_pending(a)
        if not p or p["state"] not in m.states:
            continue
        for c in _names(p["completions"]):
            if c not in m.events or (a, c) in seen:
                continue
            seen.add((a, c))
            arms = m.cells.get((p["state"], c), [])
            if not any(x.kind == "transition" for x in arms):
                problems.append((m.action_line[a], "pending action '%s' has no transition from in-flight state '%s' on completion event '%s'" % (a, p["state"], c)))
    used = {a.action for arms in m.cells.values() for a in arms if a.action}
    for a in m.actions:
        if a not in used:
            problems.append((m.action_line[a], "action '%s' is declared but never used" % a))
    gused = {a.guard for arms in m.cells.values() for a in arms if a.guard and a.guard != "else"}
    for g in m.guards:
        if g not in gused:
            problems.append((m.guard_line[g], "guard '%s' is declared but never used" % g))


def successors(m, s):
    out = []
    for e in m.events:
        for a in m.cells.get((s, e), []):
            if a.kind == "transition":
                out.append(a.to)
                if a.on_error:
                    out.append(a.on_error)
                if a.pending:
                    out.append(a.pending)
    return out


def _check_graph(m, problems):
    if m.initial is None:
        return
    seen = {m.initial}
    q = deque([m.initial])
    while q:
        s = q.popleft()
        for t in successors(m, s):
            if t not in seen:
                seen.add(t)
                q.append(t)
    for s in m.states:
        if s not in seen:
            problems.append((m.state_line[s], "state '%s' is unreachable from the initial state '%s'" % (s, m.initial)))
    goal = {s for s in m.states if m.flag(s, "terminal") or m.flag(s, "rest")}
    pred = {s: set() for s in m.states}
    for s in m.states:
        for t in successors(m, s):
            pred[t].add(s)
    live = set(goal)
    q = deque(goal)
    while q:
        s = q.popleft()
        for p in pred[s]:
            if p not in live:
                live.add(p)
                q.append(p)
    for s in m.states:
        if s not in live:
            problems.append((m.state_line[s], "state '%s' cannot reach a terminal or rest state" % s))
    for s in m.states:
        if m.flag(s, "terminal"):
            for e in m.events:
                for a in m.cells.get((s, e), []):
                    if a.kind == "transition" and a.to != s:
                        problems.append((a.line, "terminal state '%s' has a transition out on '%s'" % (s, e)))


# ---------------------------------------------------------------------------------------------
# Outputs


def ir(m):
    cells, transitions = [], []
    for s in m.states:
        for e in m.events:
            arms = m.cells[(s, e)]
            for a in arms:
                if a.kind == "transition":
                    transitions.append({"from": s, "on": e, "guard": a.guard, "action": a.action,
                                        "to": a.to, "on_error": a.on_error})
            first = arms[0]
            if any(a.kind == "transition" for a in arms):
                decision, error = "transition", None
            else:
                decision, error = first.kind, first.error
            cell = {"state": s, "event": e, "decision": decision, "error": error}
            if first.kind == "reject" and len(arms) == 1:
                cell["message"] = first.message
            if len(arms) > 1:
                cell["arms"] = [{"guard": a.guard, "decision": a.kind, "to": a.to, "error": a.error}
                                for a in arms]
            cells.append(cell)
    return {
        "machine": m.name,
        "spec_hash": m.hash,
        "states": [{"name": s, "initial": s == m.initial, "terminal": m.flag(s, "terminal"),
                    "rest": m.flag(s, "rest"), "frozen": m.flag(s, "frozen")} for s in m.states],
        "events": [{"name": e, "kind": m.event_info[e]["kind"]} for e in m.events],
        "guards": list(m.guards),
        "actions": [{"name": a, "fails": m.action_fails(a),
                     "pending": (m.action_pending(a) or {}).get("state"),
                     "completions": _names((m.action_pending(a) or {}).get("completions", []))}
                    for a in m.actions],
        "transitions": transitions,
        "cells": cells,
    }


def _env():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["cstr"] = lambda s: json.dumps(s if s is not None else "")
    env.filters["upper"] = lambda s: s.upper()
    env.filters["mdcell"] = lambda s: (s or "").replace("|", "\\|").replace("\n", " ")
    env.filters["dotwrap"] = lambda names: "\\n".join(wrap_names(names, 40))
    return env


PAD_ARM = Arm("reject", 0, error="invalid_argument", message="no such event", origin="pad")


def c_model(m, spec_rel):
    """What the C templates need: the first arm of every cell in (state, event) order, then
    the further alternatives of guarded cells, each arm with the index of its next one."""
    shift = max(0, (len(m.events) - 1).bit_length())
    stride = 1 << shift
    n = len(m.states) * stride
    arms, nexts, extra = [None] * n, [None] * n, []
    for si in range(len(m.states)):
        for ei in range(len(m.events), stride):
            arms[si * stride + ei] = PAD_ARM  # rows are padded; fsm_dispatch refuses these events
    for si, s in enumerate(m.states):
        for ei, e in enumerate(m.events):
            chain = m.cells[(s, e)]
            idx = [si * stride + ei] + [n + len(extra) + k for k in range(len(chain) - 1)]
            extra.extend(chain[1:])
            for k, a in enumerate(chain):
                pos = idx[k]
                if pos >= n:
                    arms.append(None)
                    nexts.append(None)
                arms[pos] = a
                nexts[pos] = idx[k + 1] if k + 1 < len(chain) else None
    flags = []
    for s in m.states:
        f = []
        if s == m.initial:
            f.append("FSM_STATE_INITIAL")
        for name in ("terminal", "rest", "frozen"):
            if m.flag(s, name):
                f.append("FSM_STATE_" + name.upper())
        if s in m.inflight:
            f.append("FSM_STATE_INFLIGHT")
        flags.append(" | ".join(f) or "0")
    ctx = ("%s *" % m.context) if m.context else "void *"
    cell_names = [(m.states[i >> shift], m.events[i & (stride - 1)])
                  if i < n and (i & (stride - 1)) < len(m.events) else None for i in range(len(arms))]
    return {"m": m, "arms": list(zip(arms, nexts, cell_names)), "flags": flags, "ev_shift": shift, "spec": spec_rel, "ctx": ctx,
            "P": m.name.upper(), "p": m.name,
            "kinds": {"call": "FSM_EVENT_CALL", "external": "FSM_EVENT_EXTERNAL",
                      "completion": "FSM_EVENT_COMPLETION"},
            "context_decl": m.context if m.context and m.context.startswith(("struct ", "union ")) else None}


def write_if_changed(path, content, binary=False):
    mode = "rb" if binary else "r"
    try:
        with open(path, mode, **({} if binary else {"encoding": "utf-8"})) as f:
            if f.read() == content:
                return False
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
        f.write(content)
    os.replace(tmp, path)
    return True


def spec_rel(path):
    root = os.path.normpath(os.path.join(HERE, ".."))
    p = os.path.normpath(os.path.abspath(path))
    return os.path.relpath(p, root) if p.startswith(root + os.sep) else os.path.basename(p)


def gen_c(m):
    env = _env()
    model = c_model(m, spec_rel(m.path))
    return env.get_template("machine.h.j2").render(**model), env.get_template("machine.c.j2").render(**model)


def _dot_label(a):
    parts = []
    if a.guard and a.guard != "else":
        parts.append("[%s]" % a.guard)
    elif a.guard == "else":
        parts.append("[else]")
    if a.action:
        parts.append("/ %s" % a.action)
    return " ".join(parts)


def edges(m):
    """Diagram edges: (from, to, event, label, style) merged per (from, to, label)."""
    out = {}
    for s in m.states:
        for e in m.events:
            for a in m.cells[(s, e)]:
                if a.kind != "transition":
                    continue
                lab = _dot_label(a)
                out.setdefault((s, a.to, "ok", lab), []).append(e)
                if a.on_error and a.action:
                    out.setdefault((s, a.on_error, "error", a.action), []).append(e)
                if a.pending:
                    out.setdefault((s, a.pending, "pending", a.action), []).append(e)
    return [(f, t, style, lab, evs) for (f, t, style, lab), evs in out.items()]


def wrap_names(names, width=56):
    """Comma-separated names broken into lines of at most about width characters."""
    lines, cur = [], ""
    for n in names:
        if cur and len(cur) + len(n) + 2 > width:
            lines.append(cur + ",")
            cur = n
        else:
            cur = (cur + ", " + n) if cur else n
    if cur:
        lines.append(cur)
    return lines


def reject_lines(m, s):
    """The calls state s rejects by name (not by the machine default), grouped by error class and
    wrapped, so a diagram node stays narrow: "every call" stands for all call events."""
    by_class = {}
    for e in m.events:
        for a in m.cells[(s, e)]:
            if a.kind == "reject" and a.origin != "default" and not a.guard:
                by_class.setdefault(a.error, []).append(e)
    calls = [e for e in m.events if m.event_info[e].get("kind", "call") == "call"]
    lines = []
    for err, evs in by_class.items():
        if len(calls) > 3 and set(calls) <= set(evs):
            evs = ["every call"] + [e for e in evs if e not in calls]
        lines.append("✗ %s:" % err)
        lines.extend("    " + b for b in wrap_names(evs, 44))
    return lines


def gen_docs(m, coverage=None):
    env = _env()
    model = c_model(m, spec_rel(m.path))
    model["edges"] = edges(m)
    model["coverage"] = coverage
    matrix = []
    for s in m.states:
        row = []
        for e in m.events:
            arms = m.cells[(s, e)]
            txt = []
            for a in arms:
                g = ("[%s] " % a.guard) if a.guard else ""
                if a.kind == "transition":
                    t = "→ %s" % a.to
                    if a.action:
                        t = "%s / %s" % (t, a.action)
                    if a.on_error:
                        t += " (err → %s)" % a.on_error
                    if a.pending:
                        t += " (pending → %s)" % a.pending
                    txt.append(g + t)
                elif a.kind == "ignore":
                    txt.append(g + "ignore")
                else:
                    txt.append(g + "✗ %s%s" % (a.error, "" if a.origin != "default" else " (default)"))
            row.append("<br>".join(txt))
        matrix.append((s, row))
    model["matrix"] = matrix
    rejects = []
    for s in m.states:
        for e in m.events:
            for a in m.cells[(s, e)]:
                if a.kind == "reject" and a.origin != "default":
                    rejects.append((s, e, a))
    model["rejects"] = rejects
    model["named_rejects"] = {s: reject_lines(m, s) for s in m.states}
    model["flag_text"] = {
        s: ", ".join(f for f in (["initial"] if s == m.initial else [])
                     + [f for f in ("terminal", "rest", "frozen") if m.flag(s, f)]
                     + (["in-flight"] if s in m.inflight else []))
        for s in m.states
    }
    dot = env.get_template("machine.dot.j2" if coverage is None else "machine_cover.dot.j2").render(**model)
    mmd = env.get_template("machine.mmd.j2").render(**model)
    md = env.get_template("matrix.md.j2").render(**model)
    return dot, mmd, md


def render_svg(dot_text):
    try:
        r = subprocess.run(["dot", "-Tsvg"], input=dot_text.encode(), capture_output=True, check=True)
    except FileNotFoundError:
        raise SystemExit("fsmc: graphviz 'dot' is needed for SVG output (apt-get install graphviz)")
    return r.stdout


# ---------------------------------------------------------------------------------------------
# Command line


def report(path, problems):
    for line, msg in sorted(problems, key=lambda p: (p[0], p[1])):
        print("%s:%d: %s" % (path, line, msg))


def load_all(paths):
    machines, ok = [], True
    for p in paths:
        m, problems = build(p)
        if problems:
            report(p, problems)
            ok = False
        else:
            machines.append(m)
    return machines, ok


def cmd_check(args):
    _, ok = load_all(args.spec)
    return 0 if ok else 1


def cmd_ir(args):
    machines, ok = load_all([args.spec])
    if not ok:
        return 1
    json.dump(ir(machines[0]), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def cmd_c(args):
    machines, ok = load_all(args.spec)
    if not ok:
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    for m in machines:
        h, c = gen_c(m)
        write_if_changed(os.path.join(args.out_dir, "%s_fsm.h" % m.name), h)
        write_if_changed(os.path.join(args.out_dir, "%s_fsm.c" % m.name), c)
    return 0


def doc_files(m):
    dot, mmd, md = gen_docs(m)
    irj = json.dumps(ir(m), indent=2) + "\n"
    return {
        "%s.dot" % m.name: dot,
        "%s.svg" % m.name: render_svg(dot).decode(),
        "%s.mmd" % m.name: mmd,
        "%s.md" % m.name: md,
        "%s.ir.json" % m.name: irj,
    }


def cmd_docs(args):
    machines, ok = load_all(args.spec)
    if not ok:
        return 1
    stale = []
    if not args.check:
        os.makedirs(args.out_dir, exist_ok=True)
    for m in machines:
        for name, content in doc_files(m).items():
            path = os.path.join(args.out_dir, name)
            if args.check:
                try:
                    with open(path, encoding="utf-8") as f:
                        same = f.read() == content
                except FileNotFoundError:
                    same = False
                if not same:
                    stale.append(path)
            else:
                write_if_changed(path, content)
    if args.check:
        expected = {n for m in machines for n in doc_files(m)}
        if os.path.isdir(args.out_dir):
            for f in sorted(os.listdir(args.out_dir)):
                if f not in expected and f != "README.md":
                    stale.append(os.path.join(args.out_dir, f) + " (no spec makes it)")
        for s in stale:
            print("stale: %s" % s)
        if stale:
            print("generated/ is stale: run `meson compile -C build regen` and commit the result")
            return 1
        print("generated/ is fresh (%d machines)" % len(machines))
    return 0


def cmd_summary(args):
    machines, ok = load_all(args.spec)
    if not ok:
        return 1
    root = os.path.normpath(os.path.join(HERE, ".."))
    out = os.path.relpath(os.path.abspath(args.out_dir), root)
    print("%-14s %6s %6s %11s %8s %8s  %s" % ("machine", "states", "events", "transitions",
                                              "rejects", "ignores", "spec"))
    for m in machines:
        arms = [a for v in m.cells.values() for a in v]
        print("%-14s %6d %6d %11d %8d %8d  %s" % (
            m.name, len(m.states), len(m.events), sum(a.kind == "transition" for a in arms),
            sum(a.kind == "reject" for a in arms), sum(a.kind == "ignore" for a in arms),
            spec_rel(m.path)))
    print("\nall %d specs compile with every (state, event) cell decided." % len(machines))
    print("diagrams and matrices, per machine, in %s/:" % out)
    for m in machines:
        print("  %s/%s.svg  %s/%s.mmd  %s/%s.md  %s/%s.ir.json" % (out, m.name, out, m.name, out, m.name, out, m.name))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="fsmc", description="ferry's state-machine spec compiler")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check", help="validate specs")
    p.add_argument("spec", nargs="+")
    p.set_defaults(fn=cmd_check)
    p = sub.add_parser("ir", help="print the JSON IR of one spec")
    p.add_argument("spec")
    p.set_defaults(fn=cmd_ir)
    p = sub.add_parser("c", help="generate C tables and prototypes")
    p.add_argument("--out-dir", required=True)
    p.add_argument("spec", nargs="+")
    p.set_defaults(fn=cmd_c)
    p = sub.add_parser("docs", help="generate diagrams, matrices and IR")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    p.add_argument("spec", nargs="+")
    p.set_defaults(fn=cmd_docs)
    p = sub.add_parser("summary", help="one line per machine and where its diagrams are")
    p.add_argument("--out-dir", required=True)
    p.add_argument("spec", nargs="+")
    p.set_defaults(fn=cmd_summary)
    p = sub.add_parser("tests", help="generate model-based test cases")
    p.add_argument("--out-dir", required=True)
    p.add_argument("spec", nargs="+")
    p.set_defaults(fn=lambda a: fsm_testgen.cmd_tests(sys.modules[__name__], a))
    p = sub.add_parser("coverage", help="spec coverage report from recorded counts")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--counts", required=True, help="directory of FERRY_FSM_COVERAGE count files")
    p.add_argument("--run", action="append", default=[],
                   help="run this program first with FERRY_FSM_COVERAGE=COUNTS (repeatable)")
    p.add_argument("--fresh", action="store_true", help="delete the count files in COUNTS first")
    p.add_argument("--strict", action="store_true", help="exit 1 unless everything is covered")
    p.add_argument("spec", nargs="+")
    p.set_defaults(fn=lambda a: fsm_cover.cmd_coverage(sys.modules[__name__], a))
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
