#!/usr/bin/env python3
"""End-to-end tests of ferryctl against two real ferry-shim processes (docs/operator-guide.md).

    e2e.py [--allow-missing] FERRYCTL FERRY_SHIM CASE [ARGS...]

CASE is one of:
  cli           every sandbox and task command against one shim, and their errors
  migrate-cli   `ferryctl migrate --json` between two shims set up with the CLI, with
                `ferryctl watch` following the source's session meanwhile
  demo          the README's demo: migrated, destination runs, source stopped, figures reported
  cancel        Cancel mid-transfer: the source keeps running, the destination holds nothing
  kill-dest     the destination shim SIGKILLed mid-transfer: the source is resumed
  sigint        SIGINT to a running demo: non-zero exit, no shim left, scratch dir removed
  drop          the migration socket reset by ferryctl's relay after 1 byte, 4160 bytes and half
                the image, on each side: the source keeps the pod each time
  sweep FAULTS ARTIFACTS [--valgrind] [--leak-subset] [--suppressions=FILE]
                the migration once per fault point (FAULTS: the fault_names program) on each
                side, once per transport drop point (ferryctl's relay cuts the socket after N
                bytes) and three controls; for each run the declared end state of its outcome
                and the workload's survival are asserted (check_end_state); exit 3 (the fault
                stopped the pod's creation) is accepted. --valgrind runs both shims under
                memcheck (no error, no definite leak); --leak-subset runs a few representative
                points only. A failed run's shim logs, FSM traces, valgrind logs and ferryctl
                output are kept under ARTIFACTS/<run>
Exit status: 0 pass, 1 fail, 77 skipped (what is missing is printed).
"""
import json
import os
import signal
import subprocess
import sys
import time

SKIP = 77
# --allow-missing: meson passes it while src/service/migration.c does not exist, so a stack that
# cannot migrate yet skips; once the service exists, an UNIMPLEMENTED answer fails the test.
ALLOW_MISSING = False


def run_demo(ctl, shim, extra, timeout=60):
    cmd = [ctl, "demo", "--shim", shim, "--json"] + extra
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def summary(out):
    """The last JSON object with a session_id: ferryctl's migration summary."""
    for line in reversed(out.splitlines()):
        line = line.strip()
        if line.startswith("{") and '"session_id"' in line:
            return json.loads(line)
    return None


def missing_service(r):
    if not ALLOW_MISSING:
        return None
    text = r.stdout + r.stderr
    for what in ("UNIMPLEMENTED", "MISSING"):
        if what in text:
            return next(l for l in text.splitlines() if what in l)
    return None


def shims_left(marker):
    """Processes whose command line mentions marker (the demo's scratch directory)."""
    left = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if marker.encode() in f.read():
                    left.append(int(pid))
        except OSError:
            pass
    return left


def expect(cond, what, failures):
    if not cond:
        failures.append(what)


def case_demo(ctl, shim, failures):
    r, took = run_demo(ctl, shim, [])
    s = summary(r.stdout)
    if r.returncode != 0 and missing_service(r):
        print("SKIP: the stack cannot migrate yet: %s" % missing_service(r))
        print(r.stdout[-3000:] + r.stderr[-3000:])
        return SKIP
    expect(r.returncode == 0, "demo exit %d:\n%s\n%s" % (r.returncode, r.stdout[-4000:],
                                                          r.stderr[-4000:]), failures)
    expect(s is not None, "no summary in the demo's output", failures)
    if s:
        expect(s["succeeded"], "summary says not succeeded: %s" % s, failures)
        expect(s["passes"] >= 1, "no pre-copy pass reported: %s" % s, failures)
        expect(s["bytes"] > 0, "no bytes reported: %s" % s, failures)
        expect(s["total_ms"] > 0 and s["transfer_ms"] <= s["total_ms"],
               "inconsistent times: %s" % s, failures)
        print("demo: %d passes, %d bytes, blackout %d ms, transfer %.1f ms, total %.1f ms "
              "(wall %.1f s)" % (s["passes"], s["bytes"], s["blackout_ms"], s["transfer_ms"],
                                 s["total_ms"], took))
    return 0


def case_cancel(ctl, shim, failures):
    # pass 0: Cancel both sides as soon as both transfers started, i.e. mid-transfer
    r, _ = run_demo(ctl, shim, ["--cancel-after-pass", "0"])
    s = summary(r.stdout)
    if r.returncode != 0 and missing_service(r):
        print("SKIP: %s" % missing_service(r))
        return SKIP
    # exit 0: the demo found the source's containers and sandbox running and nothing running
    # on the destination
    expect(r.returncode == 0, "cancel demo exit %d:\n%s\n%s" % (r.returncode, r.stdout[-4000:],
                                                                 r.stderr[-4000:]), failures)
    expect(s is not None, "no summary", failures)
    if s:
        expect(s["cancelled"], "not cancelled: %s" % s, failures)
        expect(s["rolled_back"], "the source was not resumed: %s" % s, failures)
        expect(not s["succeeded"], "cancelled and succeeded: %s" % s, failures)
        print("cancel: %s" % s)
    return 0


def case_kill_dest(ctl, shim, failures):
    # SIGKILL the destination shim as soon as both transfers started
    r, _ = run_demo(ctl, shim, ["--kill-destination-at-pass", "0", "--timeout", "30"])
    s = summary(r.stdout)
    if r.returncode != 0 and missing_service(r):
        print("SKIP: %s" % missing_service(r))
        return SKIP
    expect(r.returncode == 0, "kill-dest demo exit %d:\n%s\n%s" % (
        r.returncode, r.stdout[-4000:], r.stderr[-4000:]), failures)
    expect(s is not None, "no summary", failures)
    if s:
        expect(not s["succeeded"], "migrated to a killed shim: %s" % s, failures)
        expect(s["rolled_back"], "the source was not resumed: %s" % s, failures)
        expect(s.get("failure"), "no failure reported: %s" % s, failures)
    return 0


def case_sigint(ctl, shim, failures):
    p = subprocess.Popen([ctl, "demo", "--shim", shim], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    scratch = None
    deadline = time.monotonic() + 20
    # interrupt mid-migration (sessions open on both shims): the scratch directory line comes
    # first, then the shims, the pod and the migration's steps
    lines = []
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "scratch directory" in line:
            scratch = line.split("scratch directory", 1)[1].strip()
        if "prepare (destination) ..." in line:
            break
    if scratch is None:
        p.kill()
        failures.append("the demo never printed its scratch directory: %s" % "".join(lines))
        return 0
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        failures.append("the demo did not end within 20 s of SIGINT")
        return 0
    expect(p.returncode != 0, "an interrupted demo exited 0", failures)
    expect("interrupted" in err, "no word of the interrupt: %s" % err[-2000:], failures)
    expect(not os.path.exists(scratch), "scratch directory %s left behind" % scratch, failures)
    left = shims_left(scratch)
    expect(not left, "shim processes left behind: %s" % left, failures)
    return 0


def case_cli(ctl, shim, failures):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "s.sock")
        p = subprocess.Popen([shim, "serve", "--address", sock, "--memory-mb", "8"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            ready = p.stdout.readline().strip()
            expect(ready == "unix://" + sock, "shim not ready: %r" % ready, failures)

            def c(*args, rc=0, out=None):
                r = subprocess.run([ctl, "--address", sock] + list(args), capture_output=True,
                                   text=True, timeout=20)
                text = r.stdout + r.stderr
                expect(r.returncode == rc, "%s: exit %d, want %d: %s" % (
                    " ".join(args), r.returncode, rc, text), failures)
                if out is not None:
                    expect(out in text, "%s: %r not in %r" % (" ".join(args), out, text),
                           failures)
                return text

            c("sandbox", "create", "pod1", "--bundle", tmp, out="sandbox pod1 created")
            c("sandbox", "create", "pod2", rc=1, out="ALREADY_EXISTS")
            c("sandbox", "start", "pod1", out=": ready")
            c("status", out="sandbox pod1: ready")
            c("task", "create", "web", out="task web created")
            c("task", "create", "web", rc=1, out="ALREADY_EXISTS")
            c("task", "start", "web", out="task web started (pid ")
            c("task", "state", "web", out="task web: running")
            c("task", "delete", "web", rc=1, out="FAILED_PRECONDITION")
            c("task", "kill", "web", "--signal", "0", rc=1, out="bad --signal")
            c("task", "kill", "web", "--signal", "9", out="signal 9 sent")
            c("task", "wait", "web", out="exited with status 137")
            c("task", "state", "web", out="task web: stopped")
            c("task", "delete", "web", out="exit status 137")
            c("task", "state", "web", rc=1, out="NOT_FOUND")
            c("task", "create", "bad/id", rc=1, out="INVALID_ARGUMENT")
            c("task", "bogus", "x", rc=2, out="usage")
            c("sandbox", "stop", out="sandbox stopped")
            c("sandbox", "status", out="sandbox pod1: stopped")
            r = subprocess.run([ctl, "--address", os.path.join(tmp, "none.sock"), "status"],
                               capture_output=True, text=True)
            expect(r.returncode == 1 and "connect" in r.stderr,
                   "no shim: exit %d %s" % (r.returncode, r.stderr), failures)
            r = subprocess.run([ctl, "nosuch"], capture_output=True, text=True)
            expect(r.returncode == 2, "unknown command: exit %d" % r.returncode, failures)
        finally:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        expect(p.returncode == 0, "shim exit %s after SIGTERM" % p.returncode, failures)
        expect(not os.path.exists(sock), "shim left its socket", failures)
    return 0


def start_shim(shim, sock):
    p = subprocess.Popen([shim, "serve", "--address", sock, "--memory-mb", "64"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = p.stdout.readline().strip()
    return p, ready == "unix://" + sock


def stop_shim(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return p.returncode


def case_migrate_cli(ctl, shim, failures):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        a, b = os.path.join(tmp, "a.sock"), os.path.join(tmp, "b.sock")
        pa, ok_a = start_shim(shim, a)
        pb, ok_b = start_shim(shim, b)
        try:
            expect(ok_a and ok_b, "shims not ready", failures)

            def c(sock, *args):
                r = subprocess.run([ctl, "--address", sock] + list(args), capture_output=True,
                                   text=True, timeout=20)
                expect(r.returncode == 0, "%s: exit %d: %s%s" % (" ".join(args), r.returncode,
                                                                  r.stdout, r.stderr), failures)
                return r.stdout

            c(a, "sandbox", "create", "p1")
            c(a, "sandbox", "start", "p1")
            c(a, "task", "create", "t1")
            pid = c(a, "task", "start", "t1").split("pid ")[-1].rstrip(")\n")
            mig = subprocess.Popen([ctl, "migrate", "--source", a, "--destination", b,
                                    "--container", "t1=t1-moved", "--session", "s42",
                                    "--bundle-dir", tmp, "--transport", "unix", "--json"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # the session exists once the export answered; watch is refused before that
            watch = None
            for _ in range(100):
                w = subprocess.run([ctl, "--address", a, "watch", "--session", "s42"],
                                   capture_output=True, text=True, timeout=60)
                if w.returncode == 0 or "no active session" not in w.stderr:
                    watch = w
                    break
                time.sleep(0.01)
            out, err = mig.communicate(timeout=60)
            expect(mig.returncode == 0, "migrate exit %d: %s %s" % (mig.returncode, out, err),
                   failures)
            s = summary(out)
            expect(s is not None and s["succeeded"], "migrate summary: %s" % s, failures)
            print("migrate-cli: %s" % s)
            phases = [json.loads(l).get("phase") for l in out.splitlines()
                      if l.startswith("{") and '"side"' in l]
            expect("done" in phases, "no DONE among the JSON notifications: %s" % phases,
                   failures)
            if watch is None:
                failures.append("watch never got the session")
            else:
                expect(watch.returncode == 0, "watch exit %d: %s" % (watch.returncode,
                                                                    watch.stderr), failures)
                expect("transfer done (success)" in watch.stdout or
                       "blackout" in watch.stdout or "done" in watch.stdout,
                       "watch saw no progress: %s" % watch.stdout, failures)
            # the task runs under its new id on the destination, with the same pid
            st = c(b, "task", "state", "t1-moved")
            expect("running (pid %s)" % pid in st, "destination: %s (source pid %s)" % (st, pid),
                   failures)
            st = c(a, "sandbox", "status")
            expect(": stopped" in st, "source sandbox after migrate: %s" % st, failures)
        finally:
            expect(stop_shim(pa) == 0, "source shim exit", failures)
            expect(stop_shim(pb) == 0, "destination shim exit", failures)
    return 0


def shim_has_fault_option(shim):
    r = subprocess.run([shim, "--help"], capture_output=True, text=True)
    return "--fault" in r.stdout + r.stderr


def kept_dir(r):
    """The scratch directory a demo kept (--keep, --keep-on-failure), or None."""
    for line in (r.stdout + r.stderr).splitlines():
        if line.startswith("kept ") and " (shim logs" in line:
            return line[5:line.index(" (shim logs")]
    return None


def keep_artifacts(r, artifacts, name, extra_dirs=()):
    """Moves the scratch directory the demo kept to artifacts/name, with the files of
    extra_dirs (valgrind logs) and ferryctl's output beside it. Returns the path."""
    import shutil
    dst = os.path.join(artifacts, name)
    shutil.rmtree(dst, ignore_errors=True)
    kept = kept_dir(r)
    if kept and os.path.isdir(kept):
        os.makedirs(artifacts, exist_ok=True)
        shutil.move(kept, dst)
    os.makedirs(dst, exist_ok=True)
    for d in extra_dirs:
        if d and os.path.isdir(d) and os.listdir(d):
            os.makedirs(dst, exist_ok=True)
            for f in os.listdir(d):
                shutil.copy(os.path.join(d, f), dst)
    with open(os.path.join(dst, "ferryctl.out"), "w") as f:
        f.write(r.stdout)
        f.write("\n---- stderr ----\n")
        f.write(r.stderr)
    return dst


def end_state(out):
    for line in out.splitlines():
        if line.startswith('{"end_state"'):
            return json.loads(line)["end_state"]
    return None


# Stream points of src/hcs/fault.h: armed as `--fault NAME:@4096` (the shim drops the migration
# socket after that many bytes); ferryctl's relay adds drops at other offsets and sides.
STREAM_POINTS = ("transfer.source_drop_after_bytes", "transfer.destination_drop_after_bytes")
CONTAINERS = ("web", "worker")


def check_end_state(s, es, failures, label):
    """The declared end state of the run's outcome (docs/operator-guide.md, the demo's step 5):
    migrated -> the destination runs the same processes and the source is stopped; failed or
    cancelled -> the source still runs its processes (the workload survived) and the
    destination holds nothing running."""
    def bad(what):
        failures.append("%s: %s" % (label, what))

    if es is None:
        return bad("no end_state line")
    migrated = bool(s["succeeded"] or s.get("resumed_on_destination"))
    if es["expect"] != ("destination" if migrated else "source"):
        return bad("the demo expected %s" % es["expect"])
    if not es["checks_passed"]:
        bad("the demo's own checks failed")
    live, other = ("destination", "source") if migrated else ("source", "destination")
    if es[live] is None:
        return bad("the %s was not checked" % live)
    for c in CONTAINERS:
        t = es[live][c]
        if t["status"] != "running" or t["pid"] != t["source_pid"]:
            bad("%s container %s is %s (pid %s, was %s): the workload did not survive" % (
                live, c, t["status"], t["pid"], t["source_pid"]))
    if es[live]["sandbox"] != "ready":
        bad("%s sandbox is %s" % (live, es[live]["sandbox"]))
    if es[other] is None:
        if not (other == "destination" and es["destination_killed"]):
            bad("the %s was not checked" % other)
        return
    for c in CONTAINERS:
        if es[other][c]["status"] == "running":
            bad("%s container %s still runs: the pod runs on both sides" % (other, c))
    if es[other]["sandbox"] == "ready":
        bad("%s sandbox is still ready" % other)


def valgrind_wrapper(shim, tmp):
    """A script that runs ferry-shim under memcheck; each process logs to $FERRY_VG_DIR."""
    path = os.path.join(tmp, "ferry-shim-valgrind")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --error-exitcode=99 --leak-check=full "
                "--errors-for-leak-kinds=definite --show-leak-kinds=definite "
                "--num-callers=30 %s--log-file=\"$FERRY_VG_DIR/valgrind-%%p.log\" '%s' \"$@\"\n"
                % (SUPPRESSIONS, shim))
    os.chmod(path, 0o755)
    return path


def check_valgrind(vg_dir, failures, label):
    """Every shim process (and the --help probe) must end with a clean ERROR SUMMARY: no
    memory error and no definite leak. A log without a summary means the shim was killed
    before valgrind could check."""
    logs = sorted(f for f in os.listdir(vg_dir) if f.startswith("valgrind-"))
    if not logs:
        failures.append("%s: no valgrind log: the shims did not run under valgrind" % label)
    for f in logs:
        with open(os.path.join(vg_dir, f), errors="replace") as fh:
            text = fh.read()
        if "ERROR SUMMARY: 0 errors" not in text:
            failures.append("%s: valgrind %s:\n%s" % (label, f, text[-3000:]))


def handoff_needs_pidfd(s):
    """Under valgrind the shim cannot pidfd_getfd (syscall 438 is not supported): until the shim
    opens its handoff socket, CreateDuplicateSocket fails and the run rolls back there."""
    return s and "CreateDuplicateSocket" in (s.get("failure") or "") and \
        "not implemented" in (s.get("failure") or "")


class Sweep:
    def __init__(self, ctl, shim, artifacts, memory_mb, valgrind):
        import tempfile
        self.ctl, self.artifacts, self.memory_mb = ctl, artifacts, memory_mb
        self.tmp = tempfile.mkdtemp(prefix="ferry-sweep-")
        self.shim = valgrind_wrapper(shim, self.tmp) if valgrind else shim
        self.valgrind = valgrind
        self.failures = []
        self.counts = {"runs": 0, "migrated": 0, "rolled back": 0, "setup stopped": 0,
                       "dropped": 0, "failed": 0, "handoff refused (valgrind)": 0}
        self.kept = []
        self.max_bytes = 0
        self.fired = {}     # fault point -> fired in at least one run
        self.unlogged = []  # runs whose shim left no fault line

    def run(self, label, extra, expect=None, fault=None):
        """One demo; expect(summary) may add its own assertions; fault=(side, name) records
        whether that shim's armed point fired (its exit log line). Returns the summary or
        None."""
        import shutil
        vg_dir = None
        env = dict(os.environ)
        if self.valgrind:
            vg_dir = os.path.join(self.tmp, "vg-" + label.replace("/", "_"))
            os.makedirs(vg_dir)
            env["FERRY_VG_DIR"] = vg_dir
        cmd = [self.ctl, "demo", "--shim", self.shim, "--json", "--memory-mb",
               str(self.memory_mb), "--timeout", "30", "--keep"] + extra
        t0 = time.monotonic()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        except subprocess.TimeoutExpired as e:
            def text(b):
                return (b or b"").decode(errors="replace") if not isinstance(b, str) else b
            r = subprocess.CompletedProcess(cmd, -1, text(e.stdout), text(e.stderr) +
                                            "\nsweep: the demo did not end within 120 s")
        took = time.monotonic() - t0
        s = summary(r.stdout)
        before = len(self.failures)
        self.counts["runs"] += 1
        outcome = "exit %d" % r.returncode
        if r.returncode == 3:
            self.counts["setup stopped"] += 1
            outcome = "setup stopped"
        elif s is None:
            self.failures.append("%s: exit %d and no summary" % (label, r.returncode))
        else:
            # under valgrind, a shim without a handoff socket cannot adopt the transport: the
            # demo then fails the migration (exit 1) though the source kept the pod, which
            # check_end_state asserts; any other non-zero exit fails the run
            if r.returncode != 0 and not (self.valgrind and r.returncode == 1 and
                                          handoff_needs_pidfd(s)):
                self.failures.append("%s: exit %d: the demo's checks failed" % (
                    label, r.returncode))
            check_end_state(s, end_state(r.stdout), self.failures, label)
            migrated = bool(s["succeeded"] or s.get("resumed_on_destination"))
            self.counts["migrated" if migrated else "rolled back"] += 1
            self.counts["dropped"] += bool(s.get("transport_dropped"))
            self.counts["handoff refused (valgrind)"] += bool(
                self.valgrind and handoff_needs_pidfd(s))
            self.max_bytes = max(self.max_bytes, s.get("relay_bytes", 0))
            outcome = "migrated" if migrated else "cancelled" if s["cancelled"] else \
                "rolled back"
            if expect:
                expect(s, self.failures, label)
        if vg_dir:
            check_valgrind(vg_dir, self.failures, label)
        if fault:
            self.note_fired(r, fault, label)
        if len(self.failures) > before:
            self.counts["failed"] += 1
            kept = keep_artifacts(r, self.artifacts,
                                  label.replace("/", "_").replace(":", "-"), [vg_dir])
            self.kept.append(kept)
            self.failures[before] += "\n  summary: %s\n  end state: %s\n  logs, traces%s and " \
                "ferryctl's output: %s\n%s" % (
                    json.dumps(s), json.dumps(end_state(r.stdout)),
                    ", valgrind logs" if vg_dir else "", kept, r.stderr[-2500:])
        if len(self.failures) == before:
            # --keep: the traces of a run that passed are not needed
            d = kept_dir(r)
            if d:
                shutil.rmtree(d, ignore_errors=True)
        if vg_dir:
            shutil.rmtree(vg_dir, ignore_errors=True)
        print("%-52s %-12s %5.1f s%s" % (label, outcome, took,
                                         "  FAILED" if len(self.failures) > before else ""),
              flush=True)
        return s

    def fault(self, side, name):
        arg = name + (":@4096" if name in STREAM_POINTS else "")
        return self.run("%s-fault/%s" % (side, name), ["--%s-fault" % side, arg],
                        fault=(side, name))

    def note_fired(self, r, fault, label):
        """The shim logs `ferry-shim: fault NAME nth=N calls=C fired=yes|no` for each armed
        point at exit: a point counts as exercised once a run saw it fire."""
        import re
        side, name = fault
        d = kept_dir(r)
        text = ""
        if d:
            try:
                with open(os.path.join(d, side + ".log"), errors="replace") as f:
                    text = f.read()
            except OSError:
                pass
        m = re.search(r"^ferry-shim: fault %s nth=\d+ calls=(\d+) fired=(yes|no)$" %
                      re.escape(name), text, re.M)
        if m is None:
            # a shim killed before its exit (valgrind's, or a crash the run reports) logs nothing
            self.fired.setdefault(name, False)
            self.unlogged.append(label)
            return
        self.fired[name] = self.fired.get(name, False) or m.group(2) == "yes"

    def drop(self, nbytes, side, must_drop):
        """The migration socket dropped after nbytes by ferryctl's relay: when the drop comes
        before the source finished (must_drop), it must fire, the migration must fail and the
        source must keep running."""
        def expect(s, failures, label):
            if handoff_needs_pidfd(s):
                return  # under valgrind: no transport was ever handed over (handoff_needs_pidfd)
            if must_drop and not s.get("transport_dropped"):
                failures.append("%s: the relay never dropped (%s bytes relayed)" % (
                    label, s.get("relay_bytes")))
            if must_drop and (s["succeeded"] or s.get("resumed_on_destination")):
                failures.append("%s: migrated over a dropped transport: %s" % (label, s))
        return self.run("drop/%d:%s" % (nbytes, side),
                        ["--drop-transport-after", "%d:%s" % (nbytes, side)], expect)

    def finish(self, what):
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)
        c = self.counts
        print("sweep: %d runs (%s)%s: "
              "%d migrated, %d rolled back, %d stopped the setup, %d transport drops, "
              "%d failed" % (c["runs"], what, " under valgrind" if self.valgrind else "",
                             c["migrated"], c["rolled back"], c["setup stopped"], c["dropped"],
                             c["failed"]))
        if self.valgrind and c["handoff refused (valgrind)"]:
            print("sweep: %d runs rolled back at the socket handoff: under valgrind the shim "
                  "cannot pidfd_getfd and has no handoff socket yet (docs/testing.md)" %
                  c["handoff refused (valgrind)"])
        if self.fired:
            quiet = sorted(n for n, f in self.fired.items() if not f)
            print("sweep: %d of %d fault points fired in at least one run%s" % (
                len(self.fired) - len(quiet), len(self.fired),
                ("; never reached by the demo's migration: " + ", ".join(quiet)) if quiet else ""))
            if self.unlogged:
                print("sweep: %d runs' shims left no fault line (killed before exit): %s" % (
                    len(self.unlogged), ", ".join(self.unlogged[:8])))
        kept = [k for k in self.kept if k]
        if kept:
            print("sweep: logs, traces and valgrind logs of the failed runs:\n  " +
                  "\n  ".join(kept))


SUPPRESSIONS = ""
# Source faults that land in the rollback's FinalizeSandbox(RESUME) when a cancel comes first.
ROLLBACK_FAULTS = ("hcs.finalize", "hcs.resume", "guest.raise_floors")
# The leak subset (default suite): a clean migration, a fault in the setup, in the destination's
# prepare, in the source's transfer, a failed resume, a cancel and a dropped transport.
LEAK_SUBSET = [("source", "guest.create_container"), ("destination", "hcs.lm_start_destination"),
               ("source", "hcs.transfer"), ("destination", "hcs.finalize")]


def drop_points(sw, total):
    """Transport drops: the first byte, one page in, the middle and near the end of the image,
    each on both sockets, the source's only and the destination's only."""
    for nbytes, must in ((1, True), (4096 + 64, True), (total // 2, True),
                         (total - total // 20, False)):
        for side in ("both", "source", "destination"):
            sw.drop(max(1, nbytes), side, must)


def case_sweep(ctl, shim, faults, artifacts, failures, opts):
    if not shim_has_fault_option(shim):
        print("SKIP: ferry-shim has no --fault NAME[:NTH] option yet; the sweep needs it")
        return SKIP
    names = subprocess.run([faults], capture_output=True, text=True, check=True).stdout.split()
    valgrind = "--valgrind" in opts
    leak_subset = "--leak-subset" in opts
    if valgrind and not shutil_which("valgrind"):
        print("SKIP: valgrind is not installed (apt-get install valgrind)")
        return SKIP
    sw = Sweep(ctl, shim, artifacts, 8 if valgrind else 32, valgrind)
    t0 = time.monotonic()
    base = sw.run("control/no-fault", [])
    # the relay's byte count of a clean migration sizes the drop points
    probe = sw.run("control/relay-no-drop", ["--drop-transport-after", "1024m"])
    total = (probe or {}).get("relay_bytes") or (base or {}).get("bytes") or (1 << 20)
    if probe and probe.get("transport_dropped"):
        failures.append("a 1 GiB budget dropped a %d MiB migration" % sw.memory_mb)
    sw.run("control/cancel-at-0", ["--cancel-after-pass", "0"])
    # the rollback itself faulted: the source's first resume fails; it must still end running
    for name in ROLLBACK_FAULTS:
        sw.run("rollback/source-fault/%s" % name,
               ["--cancel-after-pass", "0", "--source-fault", name])
    if leak_subset:
        for side, name in LEAK_SUBSET:
            sw.fault(side, name)
        sw.drop(total // 2, "both", not valgrind)
        what = "controls, faulted rollbacks, %d fault points, a transport drop" % len(LEAK_SUBSET)
    else:
        for name in names:
            for side in ("source", "destination"):
                sw.fault(side, name)
        drop_points(sw, total)
        what = "controls, faulted rollbacks, %d fault points x 2 sides, transport drops" % len(
            names)
    sw.finish(what)
    print("sweep: %.1f s" % (time.monotonic() - t0))
    failures.extend(sw.failures)
    return 0


def case_drop(ctl, shim, failures):
    """The default suite's share of the sweep: the migration socket reset by ferryctl's relay
    after one byte, one page and half the image, on each side in turn: the source must keep the
    pod every time, and a budget larger than the image must change nothing."""
    import shutil
    # FERRYCTL is build/src/cmd/ctl/ferryctl: the artifacts go to build/tests/e2e/
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(ctl)))))
    artifacts = os.path.join(build, "tests", "e2e", "drop-artifacts")
    sw = Sweep(ctl, shim, artifacts, 16, False)
    probe = sw.run("control/relay-no-drop", ["--drop-transport-after", "1024m"])
    if probe and (probe.get("transport_dropped") or not probe["succeeded"]):
        failures.append("a relay with a 1 GiB budget did not let a 16 MiB migration through: %s"
                        % probe)
    total = (probe or {}).get("relay_bytes") or (16 << 20)
    for nbytes, side in ((1, "source"), (4160, "destination"), (total // 2, "both"),
                         (total // 2, "source"), (total // 2, "destination")):
        sw.drop(nbytes, side, True)
    sw.finish("a control, transport drops")
    failures.extend(sw.failures)
    shutil.rmtree(sw.tmp, ignore_errors=True)
    return 0


def shutil_which(name):
    import shutil
    return shutil.which(name)


def main(argv):
    global ALLOW_MISSING
    if "--allow-missing" in argv:
        ALLOW_MISSING = True
        argv = [a for a in argv if a != "--allow-missing"]
    if len(argv) < 4:
        sys.exit(__doc__)
    ctl, shim, case = argv[1], argv[2], argv[3]
    failures = []
    cases = {"cli": case_cli, "migrate-cli": case_migrate_cli, "demo": case_demo, "cancel": case_cancel, "kill-dest": case_kill_dest,
             "sigint": case_sigint, "drop": case_drop}
    if case == "sweep":
        global SUPPRESSIONS
        opts = argv[6:]
        for o in opts:
            if o.startswith("--suppressions="):
                SUPPRESSIONS = "'--suppressions=%s' " % o.split("=", 1)[1]
        rc = case_sweep(ctl, shim, argv[4], argv[5], failures, opts)
    elif case in cases:
        rc = cases[case](ctl, shim, failures)
    else:
        sys.exit("unknown case %s" % case)
    for f in failures:
        print("FAIL: " + f)
    if failures:
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
