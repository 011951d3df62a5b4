#!/usr/bin/env python3
"""ferry-shim as a containerd runtime v2 shim, under a real containerd (docs/shim.md).

    containerd_e2e.py FERRY_SHIM

A private containerd (root, state and sockets in a temp dir; native snapshotter; no CRI) finds
the runtime io.containerd.ferry.v1 as containerd-shim-ferry-v1 on its PATH: a wrapper that
runs FERRY_SHIM with its sockets in the temp dir. The test imports a one-layer OCI image built
here, runs a task through the shim with `ctr run`, and checks containerd's view at each step:
the task RUNNING with the pid the shim's /tasks/start carried, the shim's /tasks/create and
/tasks/start reaching `ctr events` in namespace ferrytest (containerd publishes neither itself:
the shim forwards them); pause (PAUSED, /tasks/paused) and resume (RUNNING, /tasks/resumed)
of t1, the sandbox's own task, which pause the whole VM; an exec e1 (/tasks/exec-added,
/tasks/exec-started with its pid), SIGKILLed (/tasks/exit 137 of e1, a second kill refused as
finished, t1 still RUNNING) and deleted (ctr exits 137, /tasks/delete of e1); then SIGKILL
leaving t1 STOPPED with a /tasks/exit of status 137, Delete with /tasks/delete, each event
once and in order, the container removed, the shim process gone, its forwarder's figures
clean. containerd is stopped and the temp dir removed at the end.
Needs root (containerd mounts snapshots to unpack layers); CI runs as root.
Exit status: 0 pass, 1 fail, 77 skipped: no containerd binary installed, or a containerd that
cannot run on this machine (it does not come up, or cannot unpack an image: both before any
ferry code is involved; the reason and containerd's log are printed).
"""
import hashlib
import io
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

SKIP = 77
NS = "ferrytest"
RUNTIME = "io.containerd.ferry.v1"
IMAGE = "docker.io/ferry/hello:1"
TASK = "t1"
EXEC = "e1"
# containerd plugins this test has no use for (the CRI one wants a CNI setup; the
# snapshotters other than native want kernel features a CI container may lack)
DISABLED = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.overlayfs",
            "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
            "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
            "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]


class Failure(Exception):
    pass


class CannotRunHere(Exception):
    """containerd itself cannot run on this machine: nothing of ferry's was tested."""


def check(cond, what):
    if not cond:
        raise Failure(what)


def wait_for(pred, what, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise Failure("timed out (%.0f s) waiting for %s" % (timeout, what))
        time.sleep(0.05)


def oci_image(path):
    """An OCI image layout tarball: one layer holding /hello, for this machine's platform."""
    def blob(tf, data):
        digest = hashlib.sha256(data).hexdigest()
        add(tf, "blobs/sha256/" + digest, data)
        return "sha256:" + digest

    def add(tf, name, data):
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
        tf.addfile(ti, io.BytesIO(data))

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as lt:
        add(lt, "hello", b"hello from ferry\n")
    layer = buf.getvalue()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    with tarfile.open(path, "w") as tf:
        layer_digest = blob(tf, layer)
        cfg = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/hello"]},
                          "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": blob(tf, cfg), "size": len(cfg)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": len(layer)}]}).encode()
        index = json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": blob(tf, manifest), "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": IMAGE}}]}).encode()
        add(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add(tf, "index.json", index)


def config_toml(tmp):
    return "\n".join([
        "version = 2",
        'root = "%s/root"' % tmp,
        'state = "%s/state"' % tmp,
        "disabled_plugins = [%s]" % ", ".join('"%s"' % p for p in DISABLED),
        "[grpc]", '  address = "%s/c.sock"' % tmp,
        "[ttrpc]", '  address = "%s/c.sock.ttrpc"' % tmp,
        "[debug]", '  address = ""',
        "[metrics]", '  address = ""', ""])


def procs_under(tmp):
    """pids of the processes whose command line names tmp (containerd, ctr, the shim)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if tmp.encode() in cmd:
            pids.append(int(d))
    return pids


def proc_of(body):
    """The process a task event is about: its exec id (exec_id, or TaskExit's and TaskDelete's
    id), else the init, named by the container id (TaskDelete of an init leaves id empty)."""
    return body.get("exec_id") or body.get("id") or body.get("container_id")


class Events:
    """`ctr events` followed on a thread: (namespace, topic, body) as containerd delivers."""

    def __init__(self, ctr_cmd):
        self.proc = subprocess.Popen(ctr_cmd + ["events"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.seen = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        # "2026-01-01 00:00:00.000 +0000 UTC NS TOPIC {json}"
        for line in self.proc.stdout:
            parts = line.rstrip("\n").split(" ", 6)
            if len(parts) < 6:
                continue
            try:
                body = json.loads(parts[6]) if len(parts) == 7 else {}
            except ValueError:
                body = {"raw": parts[6]}
            with self.lock:
                self.seen.append((parts[4], parts[5], body))

    def has(self, ns, prefix):
        time.sleep(0.1)  # the reader thread's turn
        with self.lock:
            return any(n == ns and t.startswith(prefix) for n, t, _ in self.seen)

    def topics(self, container):
        with self.lock:
            return [(ns, t, b) for ns, t, b in self.seen
                    if t.startswith("/tasks/") and b.get("container_id") == container]

    def wait(self, topic, container=TASK, proc=TASK):
        """The first event of topic about process proc (an exec id, or container for the
        init)."""
        def match(e):
            return e[1] == topic and proc_of(e[2]) == proc
        return wait_for(lambda: next((e for e in self.topics(container) if match(e)), None),
                        "%s of %s in `ctr events`" % (topic, proc), timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=5)
        self.thread.join(timeout=5)


def task_row(ctr, task):
    out = ctr("task", "ls").stdout
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 3 and f[0] == task:
            return {"pid": int(f[1]), "status": f[2]}
    return None


def pause_resume(ctr, events, pid):
    """Pause and Resume: under `ctr run` containerd starts the shim with -id t1, and the first
    Create names the sandbox (and its VM) after its task, so t1 is the sandbox's own task and
    the shim pauses and resumes the whole VM (docs/shim.md, "Pause, Resume and Stats")."""
    # each call is answered once the VM is paused or running: no PAUSING left to see
    for verb, status, topic in (("pause", "PAUSED", "/tasks/paused"),
                                ("resume", "RUNNING", "/tasks/resumed")):
        ctr("task", verb, TASK)
        row = task_row(ctr, TASK)
        check(row == {"pid": pid, "status": status},
              "ctr task ls after %s: %s %s with pid %d, got %r" % (verb, TASK, status, pid, row))
        ns, _, body = events.wait(topic)
        check(ns == NS and body == {"container_id": TASK},
              "%s in %s for %s: %s %r" % (topic, NS, TASK, ns, body))


def exec_kill_delete(ctr, events, tmp, pid):
    """An exec in t1, killed and deleted. A sim guest process runs until it is signalled (its
    args are not run), so the exec is detached (-d) and ends by SIGKILL."""
    ctr("task", "exec", "--exec-id", EXEC, "-d", "--fifo-dir", tmp + "/fifo", TASK, "/hello")
    ns, _, body = events.wait("/tasks/exec-added", proc=EXEC)
    check(ns == NS and body == {"container_id": TASK, "exec_id": EXEC},
          "/tasks/exec-added in %s for %s: %s %r" % (NS, EXEC, ns, body))
    ns, _, body = events.wait("/tasks/exec-started", proc=EXEC)
    exec_pid = body.get("pid")
    check(ns == NS and isinstance(exec_pid, int) and exec_pid > 0 and exec_pid != pid,
          "/tasks/exec-started in %s for %s with its own pid: %s %r" % (NS, EXEC, ns, body))
    check((task_row(ctr, TASK) or {}).get("status") == "RUNNING",
          "ctr task ls: %s still RUNNING with its exec" % TASK)

    ctr("task", "kill", "--exec-id", EXEC, "-s", "SIGKILL", TASK)
    ns, _, body = events.wait("/tasks/exit", proc=EXEC)
    check(ns == NS and body.get("pid") == exec_pid and
          body.get("exit_status") == 128 + signal.SIGKILL and body.get("exited_at"),
          "/tasks/exit in %s for %s, pid %d, status 137: %s %r" % (NS, EXEC, exec_pid, ns, body))
    exec_exited_at = body.get("exited_at")
    # containerd's view of the exec (its State, then Kill): finished
    r = ctr("task", "kill", "--exec-id", EXEC, "-s", "SIGKILL", TASK, ok=False)
    check(r.returncode == 1 and "process already finished: not found" in r.stderr,
          "a second kill of %s: NOT_FOUND process already finished, got %d %r"
          % (EXEC, r.returncode, r.stderr.strip()))
    # the task's init was not touched
    check((task_row(ctr, TASK) or {}).get("status") == "RUNNING",
          "ctr task ls: %s still RUNNING after its exec's kill" % TASK)

    # ctr exits with the deleted exec's exit status
    r = ctr("task", "delete", "--exec-id", EXEC, TASK, ok=False)
    check(r.returncode == 128 + signal.SIGKILL,
          "ctr task delete --exec-id %s: exit 137, got %d %r"
          % (EXEC, r.returncode, (r.stderr or r.stdout).strip()))
    ns, _, body = events.wait("/tasks/delete", proc=EXEC)
    check(ns == NS and body.get("pid") == exec_pid and
          body.get("exit_status") == 128 + signal.SIGKILL,
          "/tasks/delete in %s for %s with status 137: %s %r" % (NS, EXEC, ns, body))
    # one exit, one time: the shim reads the clock once, at the exit
    check(body.get("exited_at") == exec_exited_at,
          "/tasks/delete of %s says it exited at %s, its /tasks/exit %s"
          % (EXEC, body.get("exited_at"), exec_exited_at))
    r = ctr("task", "kill", "--exec-id", EXEC, "-s", "SIGKILL", TASK, ok=False)
    check(r.returncode == 1 and "exec not found: not found" in r.stderr,
          "kill of the deleted %s: NOT_FOUND exec not found, got %d %r"
          % (EXEC, r.returncode, r.stderr.strip()))


def run_test(shim, containerd, ctr_bin, tmp):
    sock = tmp + "/c.sock"
    bindir = tmp + "/bin"
    os.makedirs(bindir)
    os.makedirs(tmp + "/s")
    wrapper = bindir + "/containerd-shim-ferry-v1"
    # containerd reads start's stdout and stderr to EOF (CombinedOutput): the daemon's stderr
    # goes to a file; -debug keeps it open there (exec_daemon)
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec '%s' --socket-dir '%s/s' -debug \"$@\" 2>>'%s/shim.log'\n"
                % (shim, tmp, tmp))
    os.chmod(wrapper, 0o755)
    with open(tmp + "/config.toml", "w") as f:
        f.write(config_toml(tmp))

    env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
    log = open(tmp + "/containerd.log", "w")
    daemon = subprocess.Popen([containerd, "--config", tmp + "/config.toml"], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    events = None
    base = [ctr_bin, "-a", sock]

    def ctr(*args, ok=True, ns=NS):
        r = subprocess.run(base + ["-n", ns] + list(args), capture_output=True, text=True,
                           timeout=30)
        if ok and r.returncode != 0:
            raise Failure("ctr %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                   (r.stderr or r.stdout).strip()))
        return r

    try:
        def up():
            check(daemon.poll() is None, "containerd exited with %s" % daemon.returncode)
            return os.path.exists(sock) and ctr("version", ok=False).returncode == 0
        try:
            wait_for(up, "containerd to serve %s" % sock)
        except Failure as e:
            raise CannotRunHere(str(e))
        events = Events(base)
        oci_image(tmp + "/image.tar")
        # the import's own events show `ctr events` subscribed before the task's come
        for _ in range(50):
            try:
                ctr("image", "import", "--snapshotter", "native", tmp + "/image.tar")
            except Failure as e:  # the unpack mounts the snapshot: no ferry code yet
                raise CannotRunHere(str(e))
            if events.has(NS, "/images/"):
                break
            ctr("image", "rm", IMAGE)
            time.sleep(0.1)
        check(events.has(NS, "/images/"), "`ctr events` reports the image import")
        check(IMAGE in ctr("image", "ls", "-q").stdout.split(), "image %s imported" % IMAGE)

        # the stdio fifos under tmp too (ctr's default is /run/containerd/fifo)
        ctr("run", "--snapshotter", "native", "--runtime", RUNTIME, "--fifo-dir", tmp + "/fifo",
            "-d", IMAGE, TASK)
        row = task_row(ctr, TASK)
        check(row and row["status"] == "RUNNING" and row["pid"] > 0,
              "ctr task ls: %s RUNNING with a pid, got %r" % (TASK, row))
        shims = procs_under(tmp + "/s")
        check(len(shims) == 1, "one ferry-shim serving under %s/s, got %r" % (tmp, shims))

        ns, _, body = events.wait("/tasks/create")
        check(ns == NS, "/tasks/create in namespace %s, got %s" % (NS, ns))
        check(body.get("bundle", "").startswith(tmp + "/state/"),
              "/tasks/create bundle under containerd's state dir: %r" % body)
        ns, _, body = events.wait("/tasks/start")
        check(ns == NS and body.get("pid") == row["pid"],
              "/tasks/start in %s with the task's pid %d: %s %r" % (NS, row["pid"], ns, body))

        pause_resume(ctr, events, row["pid"])
        exec_kill_delete(ctr, events, tmp, row["pid"])

        ctr("task", "kill", "-s", "SIGKILL", TASK)
        wait_for(lambda: (task_row(ctr, TASK) or {}).get("status") == "STOPPED",
                 "ctr task ls: %s STOPPED" % TASK)
        ns, _, body = events.wait("/tasks/exit")
        check(ns == NS and body.get("exit_status") == 128 + signal.SIGKILL and
              body.get("exited_at"),
              "/tasks/exit in %s with status 137: %s %r" % (NS, ns, body))
        exited_at = body.get("exited_at")

        ctr("task", "delete", TASK)
        check(task_row(ctr, TASK) is None, "task %s gone from ctr task ls" % TASK)
        ns, _, body = events.wait("/tasks/delete")
        check(ns == NS and body.get("exit_status") == 128 + signal.SIGKILL,
              "/tasks/delete in %s with status 137: %s %r" % (NS, ns, body))
        check(body.get("exited_at") == exited_at,
              "/tasks/delete of %s says it exited at %s, its /tasks/exit %s"
              % (TASK, body.get("exited_at"), exited_at))
        ctr("container", "delete", TASK)
        check(TASK not in ctr("container", "ls", "-q").stdout.split(),
              "container %s gone from ctr container ls" % TASK)

        wait_for(lambda: not procs_under(tmp + "/s"), "the ferry-shim process to exit")
        order = ["%s(%s)" % (t, proc_of(b)) for _, t, b in events.topics(TASK)]
        want = ["/tasks/%s(%s)" % e for e in [
            ("create", TASK), ("start", TASK), ("paused", TASK), ("resumed", TASK),
            ("exec-added", EXEC), ("exec-started", EXEC), ("exit", EXEC), ("delete", EXEC),
            ("exit", TASK), ("delete", TASK)]]
        check(order == want, "the task's events once each, in order: %r" % order)
        # the shim's own account: every event it published went to containerd
        with open(tmp + "/shim.log") as f:
            shim_log = f.read()
        m = re.search(r"events forwarded=(\d+) dropped=(\d+) rejected=(\d+) abandoned=(\d+) "
                      r"bad=(\d+)", shim_log)
        check(m and m.groups() == (str(len(want)), "0", "0", "0", "0"),
              "shim forwarded its %d events, none lost: %r"
              % (len(want), m.group(0) if m else shim_log))
        print("ok: task %s ran through %s; events %s" % (TASK, RUNTIME, " ".join(order)))
    except BaseException:
        # best effort, so that containerd ends the shim as it would (its failure is reported)
        for args in (("task", "delete", "-f", TASK), ("container", "delete", TASK)):
            if daemon.poll() is None:
                r = subprocess.run(base + ["-n", NS] + list(args), capture_output=True,
                                   text=True, timeout=30)
                print("cleanup: ctr %s: exit %d %s" % (" ".join(args), r.returncode,
                                                       (r.stderr or r.stdout).strip()))
        end = time.monotonic() + 5
        while procs_under(tmp + "/s") and time.monotonic() < end:
            time.sleep(0.05)
        raise
    finally:
        if events:
            events.stop()
        if daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        log.close()


def dump(tmp):
    for name in ("containerd.log", "shim.log"):
        try:
            with open(os.path.join(tmp, name)) as f:
                text = f.read()
        except OSError:
            continue
        lines = text.splitlines()
        if name == "containerd.log":  # its info lines are the plugins loading
            lines = [x for x in lines if re.search(r"level=(warning|error|fatal)", x)]
        print("---- %s (last 40 lines)" % name)
        print("\n".join(lines[-40:]))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    shim = os.path.abspath(sys.argv[1])
    containerd = shutil.which("containerd")
    if not containerd:
        print("SKIP: no containerd binary on PATH (Debian: apt-get install containerd)")
        return SKIP
    ctr_bin = shutil.which("ctr")
    if not ctr_bin:
        print("FAIL: containerd is installed without ctr")
        return 1
    if os.geteuid() != 0:
        # containerd mounts snapshots to unpack layers and chowns its sockets to root
        print("FAIL: containerd needs root; run this suite as root (uid %d)" % os.geteuid())
        return 1
    t0 = time.monotonic()
    # under /tmp: containerd's and the shim's socket paths must fit sun_path (108 bytes)
    tmp = tempfile.mkdtemp(prefix="ferry-ctrd-", dir="/tmp")
    rc = 0
    try:
        run_test(shim, containerd, ctr_bin, tmp)
    except CannotRunHere as e:
        print("SKIP: containerd cannot run on this machine: %s" % e)
        dump(tmp)
        rc = SKIP
    except (Failure, subprocess.TimeoutExpired, OSError) as e:
        print("FAIL: %s" % e)
        dump(tmp)
        rc = 1
    leftover = procs_under(tmp)
    for pid in leftover:  # ours: started by this test's containerd, named by its temp dir
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
        print("FAIL: process left behind (killed): %d %s" % (pid, cmd))
        rc = 1
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[1].startswith(tmp)]
    if mounts:
        print("FAIL: mounts left under %s: %r" % (tmp, mounts))
        rc = 1
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.exists(tmp):
            print("FAIL: %s not removed" % tmp)
            rc = 1
    print("%s in %.1f s" % ({0: "pass", SKIP: "skip"}.get(rc, "fail"), time.monotonic() - t0))
    return rc


if __name__ == "__main__":
    sys.exit(main())
