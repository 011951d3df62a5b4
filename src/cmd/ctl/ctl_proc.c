/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "cmd/ctl/ctl_proc.h"
#include "util/util.h"

#define MAX_CHILDREN 16

volatile sig_atomic_t ctl_interrupted;
volatile sig_atomic_t ctl_signals;
static int wake_pipe[2] = {-1, -1};
/* Written only on the main thread outside the handler; the handler only reads. */
static volatile pid_t children[MAX_CHILDREN];

static void on_signal(int sig)
{
        int saved = errno;

        ctl_interrupted = sig;
        ctl_signals++;
        if (wake_pipe[1] >= 0)
                (void)!write(wake_pipe[1], "", 1);
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] > 0)
                        kill(children[i], SIGTERM);
        errno = saved;
}

void ctl_proc_install_signals(void)
{
        struct sigaction sa = {.sa_handler = on_signal};

        if (wake_pipe[0] < 0 && pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                wake_pipe[0] = wake_pipe[1] = -1; /* waits then end at their next event only */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        /* a shim that dies mid-call must not kill ferryctl through its socket */
        signal(SIGPIPE, SIG_IGN);
}

int ctl_proc_wake_fd(void)
{
        return wake_pipe[0];
}

static void track(pid_t pid, pid_t replace)
{
        for (size_t i = 0; i < MAX_CHILDREN; i++) {
                if (children[i] == replace) {
                        children[i] = pid;
                        return;
                }
        }
}

_noreturn_ static void child_exec(char *const argv[], const char *log_path, pid_t parent,
                                  int report_fd)
{
        int fd, err;

        /* the shim must not outlive a ferryctl that was killed outright */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(127);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
                dup2(fd, STDIN_FILENO);
        if (log_path) {
                fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
        }
        execv(argv[0], argv);
        err = errno;
        (void)!write(report_fd, &err, sizeof(err));
        _exit(127);
}

int ctl_spawn(char *const argv[], const char *log_path, pid_t *ret_pid)
{
        pid_t parent = getpid(), pid;
        int pipefd[2], err = 0;
        ssize_t n;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                err = errno;
                close(pipefd[0]);
                close(pipefd[1]);
                return -err;
        }
        if (pid == 0) {
                close(pipefd[0]);
                child_exec(argv, log_path, parent, pipefd[1]);
        }
        close(pipefd[1]);
        /* the pipe closes on a successful exec; an errno arrives when it failed */
        do
                n = read(pipefd[0], &err, sizeof(err));
        while (n < 0 && errno == EINTR);
        close(pipefd[0]);
        if (n == (ssize_t)sizeof(err)) {
                waitpid(pid, NULL, 0);
                return -err;
        }
        track(pid, 0);
        *ret_pid = pid;
        return 0;
}

int ctl_capture(char *const argv[], char *buf, size_t size)
{
        int pipefd[2], status = 0;
        size_t len = 0;
        ssize_t n;
        pid_t pid;

        if (size == 0 || pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int err = errno;

                close(pipefd[0]);
                close(pipefd[1]);
                return -err;
        }
        if (pid == 0) {
                dup2(pipefd[1], STDOUT_FILENO);
                dup2(pipefd[1], STDERR_FILENO);
                execv(argv[0], argv);
                _exit(127);
        }
        close(pipefd[1]);
        /* read to EOF so the child never blocks on a full pipe */
        for (;;) {
                char scratch[256];
                bool room = len + 1 < size;

                n = read(pipefd[0], room ? buf + len : scratch,
                         room ? size - 1 - len : sizeof(scratch));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (room)
                        len += (size_t)n;
        }
        buf[len] = '\0';
        close(pipefd[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return status;
}

bool ctl_child_alive(pid_t pid, int *ret_status)
{
        int status;
        pid_t r;

        do
                r = waitpid(pid, &status, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                return true;
        if (r == pid) {
                track(0, pid);
                if (ret_status)
                        *ret_status = status;
        }
        return false;
}

static void sleep_ms(uint32_t ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int ctl_stop_child(pid_t pid, uint32_t grace_ms)
{
        int status = 0;

        if (pid <= 0)
                return -ECHILD;
        if (!ctl_child_alive(pid, &status))
                return status;
        kill(pid, SIGTERM);
        for (uint32_t waited = 0; waited < grace_ms; waited += 10) {
                if (!ctl_child_alive(pid, &status))
                        return status;
                sleep_ms(10);
        }
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0) {
                if (errno != EINTR) {
                        track(0, pid);
                        return -errno;
                }
        }
        track(0, pid);
        return status;
}

int ctl_mkdtemp(const char *prefix, char *ret_path)
{
        const char *tmp = getenv("TMPDIR");

        if (!tmp || tmp[0] != '/')
                tmp = "/tmp";
        if (ferry_bprintf(ret_path, PATH_MAX, "%s/%s-XXXXXX", tmp, prefix) < 0)
                return -ENAMETOOLONG;
        if (!mkdtemp(ret_path))
                return -errno;
        return 0;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        int r = (type == FTW_DP || type == FTW_D) ? rmdir(path) : unlink(path);

        return r < 0 ? -errno : 0;
}

int ctl_rm_rf(const char *path)
{
        int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);

        if (r == -1)
                return -errno;
        return r;
}

int ctl_sibling_path(const char *rel, char *ret_path)
{
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash;

        if (n < 0)
                return -errno;
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (!slash)
                return -ENOENT;
        *slash = '\0';
        if (ferry_bprintf(ret_path, PATH_MAX, "%s/%s", self, rel) < 0)
                return -ENAMETOOLONG;
        if (access(ret_path, X_OK) < 0)
                return -errno;
        return 0;
}
