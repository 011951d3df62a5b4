#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A Promela model of a migration, from the specs, for Spin.

    fsm_promela.py model --scenario YAML --spec-dir DIR --out FILE.pml
    fsm_promela.py stubs --out FILE.c SPEC...

`model` loads the specs the scenario names (spec/<name>.yaml through fsmc's loader, so the
model is built from the same cells as the C tables) and writes one Promela file: per side
(source, destination) a session process and a VM process that execute their machines' cells
(every cell: transition, ignore or reject; guarded alternatives in order, each guard bound to a
model expression or left nondeterministic; a failing action takes its on_error; a pending
action rests in its in-flight state until its completion arrives later), an orchestrator that
makes the calls in the reference's order and may abort at any point, and the transport between
the VMs (messages may be lost, a VM may exit). What is bound to what is data: the scenario
YAML (tests/model/scenario.yaml) declares the instances, the guards, what each session action
dispatches to its VM, the orchestrator's steps and recovery tables, and the bounds.

Every dispatch prints `@fsm <machine> <side> <from> <event> <arm> <result> <to>` (numbers, in
the generated C's order), so `spin -t` turns a counterexample into an event sequence that
tests/model/model_trail.py replays through the C runtime.

`stubs` writes C definitions of every guard and action of the given specs that steer the
runtime from outside (tests/model/model_replay.c): a guard answers whether it is the arm the
model chose, an action returns what the model's action returned.
"""

import argparse
import os
import re
import sys

import jinja2
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fsmc  # noqa: E402

RESULTS = ["RES_OK", "RES_PENDING", "RES_FAILED", "RES_IGNORED", "RES_REJECTED"]  # enum fsm_result
KINDS = {"transition": 0, "ignore": 1, "reject": 2}
SIDES = ["src", "dst"]


class ScenarioError(Exception):
    pass


def _need(cond, what):
    if not cond:
        raise ScenarioError(what)


class Model:
    """The scenario, checked against the machines it names."""

    def __init__(self, scen, spec_dir):
        self.scen = scen
        _need(scen.get("sides") == SIDES, "sides must be [src, dst]")
        ms = scen["machines"]
        self.roles = {}
        for role in ("session", "vm"):
            name = ms[role]["spec"]
            m, problems = fsmc.build(os.path.join(spec_dir, name + ".yaml"))
            if problems:
                fsmc.report(os.path.join(spec_dir, name + ".yaml"), problems)
                raise ScenarioError("spec %s does not compile" % name)
            self.roles[role] = m
        self.ses, self.vm = self.roles["session"], self.roles["vm"]
        self.vm_initial = {}
        for side in SIDES:
            s = ms["vm"].get("initial", {}).get(side, self.vm.initial)
            self.state(self.vm, s, "machines.vm.initial.%s" % side)
            self.vm_initial[side] = s
        self.bounds = scen["bounds"]
        for mname, gs in scen.get("guards", {}).items():
            _need(mname in (self.ses.name, self.vm.name), "guards: unknown machine %s" % mname)
            m = self.ses if mname == self.ses.name else self.vm
            for g in gs:
                _need(g in m.guards, "guards.%s: '%s' is not a guard of %s" % (mname, g, mname))

    # name checks -------------------------------------------------------------------------
    def state(self, m, s, where):
        _need(s in m.states, "%s: '%s' is not a state of %s" % (where, s, m.name))
        return "%s_S_%s" % (m.name, s)

    def event(self, m, e, where):
        _need(e in m.events, "%s: '%s' is not an event of %s" % (where, e, m.name))
        return "%s_E_%s" % (m.name, e)

    def action(self, m, a, where):
        _need(a in m.actions, "%s: '%s' is not an action of %s" % (where, a, m.name))
        return "%s_A_%s" % (m.name, a)

    def guard_expr(self, m, g):
        expr = str(self.scen["guards"].get(m.name, {}).get(g, "nondet"))
        if expr == "nondet":
            return None

        def sref(mo):
            mm = self.roles["session"] if mo.group(1) == self.ses.name else self.vm
            _need(mo.group(1) in (self.ses.name, self.vm.name), "guard %s: unknown machine %s" % (g, mo.group(1)))
            return self.state(mm, mo.group(2), "guards.%s.%s" % (m.name, g))

        expr = re.sub(r"S\(\s*(\w+)\s*,\s*(\w+)\s*\)", sref, expr)
        expr = expr.replace("SIDE", "side").replace("ORIGIN", "origin").replace("VMRES", "vmres")
        return "(%s)" % expr


# ---------------------------------------------------------------------------------------------
# The cells as Promela


def _arm_set(mdl, m, k, a):
    """Promela statements that record arm k of a chain as the decision."""
    to = onerr = "0"
    pend = "NONE"
    act, fails = "0", "0"
    if a.kind == "transition":
        to = "%s_S_%s" % (m.name, a.to)
        onerr = "%s_S_%s" % (m.name, a.on_error) if a.on_error else to
        pend = "%s_S_%s" % (m.name, a.pending) if a.pending else "NONE"
        if a.action:
            act = "%s_A_%s" % (m.name, a.action)
            fails = "1" if m.action_fails(a.action) else "0"
    return "SET_ARM(%d, %d, %s, %s, %s, %s, %s)" % (k, KINDS[a.kind], act, fails, to, onerr, pend)


def _chain(mdl, m, chain, k, indent):
    """The guarded alternatives from k on: each guard bound or nondeterministic."""
    pad = " " * indent
    a = chain[k]
    if not a.guard or a.guard == "else":
        return pad + _arm_set(mdl, m, k, a) + "\n"
    expr = mdl.guard_expr(m, a.guard)
    take, skip = (expr, "else") if expr else ("true", "true")
    out = pad + "if /* [%s] */\n" % a.guard
    out += pad + ":: %s -> %s\n" % (take, _arm_set(mdl, m, k, a))
    out += pad + ":: %s ->\n" % skip
    out += _chain(mdl, m, chain, k + 1, indent + 4)
    out += pad + "fi\n"
    return out


def _chain_key(chain):
    return tuple((a.kind, a.guard, a.action, a.to, a.on_error, a.pending, a.error) for a in chain)


def decide_body(mdl, m, var):
    """`if :: st == S -> if :: ev == E || ... -> <arms> fi ... fi`, every cell present; events of a
    state with the same decision share one alternative."""
    out = []
    for s in m.states:
        groups = {}
        for e in m.events:
            chain = m.cells[(s, e)]
            groups.setdefault(_chain_key(chain), (chain, []))[1].append(e)
        out.append("    :: %s == %s_S_%s ->\n        if\n" % (var, m.name, s))
        for chain, evs in groups.values():
            cond = " || ".join("ev == %s_E_%s" % (m.name, e) for e in evs)
            note = ""
            if chain[0].kind == "reject" and len(chain) == 1:
                note = " /* %s */" % chain[0].error
            out.append("        :: %s ->%s\n" % (cond, note))
            out.append(_chain(mdl, m, chain, 0, 12))
        out.append("        fi\n")
    return "".join(out)


def rest_expr(m, var):
    return "(" + " || ".join("%s == %s_S_%s" % (var, m.name, s) for s in m.states
                             if m.flag(s, "rest") or m.flag(s, "terminal")) + ")"


# ---------------------------------------------------------------------------------------------
# Glue: what the session's actions do to the VM


def _as_list(v):
    return list(v) if isinstance(v, list) else [v]


def glue(mdl):
    ses, vm = mdl.ses, mdl.vm
    out = []
    for a, g in mdl.scen["glue"].items():
        where = "glue.%s" % a
        mdl.action(ses, a, where)
        pend = ses.action_pending(a)
        steps = []
        for i, st in enumerate(g["steps"]):
            w = "%s.steps[%d]" % (where, i)
            calls = st["vm"] if isinstance(st["vm"], dict) else {s: st["vm"] for s in SIDES}
            ev = {s: mdl.event(vm, calls[s], w + ".vm") for s in SIDES}
            oks = [mdl.event(vm, e, w + ".ok") for e in _as_list(st.get("ok", []))]
            fail = st["fail"]
            if fail == "error":
                _need(i == 0 or all(x["fail"] == "error" for x in g["steps"][:i]),
                      "%s: 'error' only before anything went pending" % w)
                late = g.get("late_fail")
                failev = mdl.event(ses, late, where + ".late_fail") if late else None
            else:
                failev = mdl.event(ses, fail, w + ".fail")
            steps.append({"ev": ev, "oks": oks, "error": fail == "error", "fail": failev})
        done = mdl.event(ses, g["done"], where + ".done") if g.get("done") else None
        _need(bool(pend) == bool(done), "%s: a pending action needs 'done' and only it" % where)
        out.append({"name": a, "id": "%s_A_%s" % (ses.name, a), "steps": steps, "done": done,
                    "pending": bool(pend)})
    return out


def timers(mdl):
    out = []
    for e in mdl.scen.get("timers", {}).get(mdl.ses.name, []):
        ev = mdl.event(mdl.ses, e, "timers")
        states = [a["state"] for a in [mdl.ses.action_pending(x) or {} for x in mdl.ses.actions]
                  if a and e in _as_list(a["completions"])]
        _need(states, "timers: %s ends no pending action" % e)
        cond = " || ".join("%s_st[side] == %s_S_%s" % (mdl.ses.name, mdl.ses.name, s)
                           for s in sorted(set(states)))
        out.append({"ev": ev, "cond": "(%s)" % cond})
    return out


def host_ops(mdl):
    """Every pending VM action: its success completion and its failure completions."""
    vm = mdl.vm
    tr = mdl.scen["transport"]
    special = {tr["send"]["action"]: "send", tr["receive"]["action"]: "receive"}
    out = []
    for a in vm.actions:
        p = vm.action_pending(a)
        if not p:
            continue
        comps = _as_list(p["completions"])
        if a in special:
            t = tr[special[a]]
            ok, fails = t["ok"], [t["fail"]]
        else:
            ok, fails = comps[0], comps[1:]
        for c in [ok] + fails:
            _need(c in comps, "transport: %s is not a completion of %s" % (c, a))
        ex = mdl.scen.get("after_exit", {}).get(a)
        dead = "%s_E_%s" % (vm.name, ex) if ex else None
        _need(ex is None or ex in comps, "after_exit: %s is not a completion of %s" % (ex, a))
        out.append({"id": "%s_A_%s" % (vm.name, a), "ok": "%s_E_%s" % (vm.name, ok),
                    "fails": ["%s_E_%s" % (vm.name, f) for f in fails], "transport": special.get(a),
                    "dead": dead or "%s_E_%s" % (vm.name, fails[0])})
    for k in ("send", "receive"):
        mdl.action(vm, tr[k]["action"], "transport.%s" % k)
    for a in mdl.scen.get("after_exit", {}):
        mdl.action(vm, a, "after_exit")
    return out


def abort_action(mdl):
    a = mdl.scen["transport"].get("aborted_by")
    return mdl.action(mdl.vm, a, "transport.aborted_by") if a else "NONE"


def orchestrator(mdl):
    ses = mdl.ses
    o = mdl.scen["orchestrator"]
    steps = []
    commit_seen = False
    for i, st in enumerate(o["steps"]):
        w = "orchestrator.steps[%d]" % i
        side = SIDES.index(st["side"])
        calls = []
        if "call" in st:
            calls = [[mdl.event(ses, st["call"], w + ".call")]]
        elif "any_order" in st:
            a, b = [mdl.event(ses, c, w + ".any_order") for c in st["any_order"]]
            calls = [[a, b], [b, a]]
        expect = [mdl.state(ses, s, w + ".expect") for s in st.get("expect", [])]
        commit_seen |= bool(st.get("commit"))
        retry = [mdl.state(ses, s, w + ".retry_in") for s in st.get("retry_in", [])]
        steps.append({"side": side, "name": st["side"], "calls": calls, "settle": bool(st.get("settle")),
                      "expect": expect, "commit": bool(st.get("commit")), "retry": retry,
                      "after_commit": commit_seen and not st.get("commit"),
                      "text": ", ".join("%s: %s" % kv for kv in st.items())})
    _need(commit_seen, "orchestrator: no step is marked commit")
    rows = []
    for t, cond in (("rollback", "!committed"), ("commit", "committed")):
        for i, side in enumerate(SIDES):
            for s, c in o[t][side].items():
                rows.append({"cond": cond, "side": i,
                             "state": mdl.state(ses, s, "orchestrator.%s.%s" % (t, side)),
                             "calls": [mdl.event(ses, x, "orchestrator.%s.%s.%s" % (t, side, s))
                                       for x in _as_list(c)]})
    return {"steps": steps, "abort": mdl.event(ses, o["abort_call"], "orchestrator.abort_call"),
            "recover": rows}


def gen_model(mdl, scenario_rel):
    ses, vm = mdl.ses, mdl.vm
    b = mdl.bounds
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    exit_ev = mdl.event(vm, mdl.scen["vm_exit_event"], "vm_exit_event")
    running = [mdl.state(vm, r, "running") for r in _as_list(mdl.scen["running"])]
    end = mdl.state(ses, mdl.scen["session_end"], "session_end")
    ctx = {
        "specs": [fsmc.spec_rel(m.path) + " (" + m.hash + ")" for m in (ses, vm)],
        "scenario": scenario_rel,
        "machines": [ses, vm],
        "results": RESULTS,
        "ses": ses, "vm": vm,
        "ses_decide": decide_body(mdl, ses, "%s_st[side]" % ses.name),
        "vm_decide": decide_body(mdl, vm, "%s_st[side]" % vm.name),
        "ses_rest": rest_expr(ses, "%s_st[s]" % ses.name),
        "vm_initial": ["%s_S_%s" % (vm.name, mdl.vm_initial[s]) for s in SIDES],
        "glue": glue(mdl), "timers": timers(mdl), "host": host_ops(mdl), "abort_act": abort_action(mdl),
        "orch": orchestrator(mdl),
        "b": b, "exit_ev": exit_ev, "running": running, "end": end,
    }
    return env.get_template("model.pml.j2").render(**ctx)


# ---------------------------------------------------------------------------------------------
# Steering stubs for the C replay


def gen_stubs(machines):
    out = ["/* generated by codegen/fsm_promela.py stubs from %s; do not edit */" %
           ", ".join(fsmc.spec_rel(m.path) for m in machines),
           "/* Every guard and action of the replayed machines, steered by tests/model/model_replay.c:",
           " * types are erased to void * (the tables only hold function addresses). */",
           "#include <stdbool.h>", "",
           "bool model_steer_guard(void);", "int model_steer_action(void);", ""]
    for m in machines:
        for g in m.guards:
            f = "%s_guard_%s" % (m.name, g)
            out.append("bool %s(void *ctx, void *arg);" % f)
            out.append("bool %s(void *ctx, void *arg)\n{\n        (void)ctx;\n        (void)arg;\n"
                       "        return model_steer_guard();\n}\n" % f)
        for a in m.actions:
            f = "%s_action_%s" % (m.name, a)
            out.append("int %s(void *ctx, void *arg);" % f)
            out.append("int %s(void *ctx, void *arg)\n{\n        (void)ctx;\n        (void)arg;\n"
                       "        return model_steer_action();\n}\n" % f)
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="fsm_promela")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("model")
    p.add_argument("--scenario", required=True)
    p.add_argument("--spec-dir", required=True, help="where <machine>.yaml of the scenario's specs are")
    p.add_argument("--out", required=True)
    p = sub.add_parser("stubs")
    p.add_argument("--out", required=True)
    p.add_argument("spec", nargs="+")
    args = ap.parse_args(argv)
    if args.cmd == "model":
        with open(args.scenario, encoding="utf-8") as f:
            scen = yaml.safe_load(f)
        try:
            text = gen_model(Model(scen, args.spec_dir), fsmc.spec_rel(args.scenario))
        except (ScenarioError, KeyError) as e:
            print("%s: %s" % (args.scenario, e), file=sys.stderr)
            return 1
    else:
        machines, ok = fsmc.load_all(args.spec)
        if not ok:
            return 1
        text = gen_stubs(machines)
    fsmc.write_if_changed(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
