/* bench-exec.c: run a sequence of commands and report wall time and rusage as one JSON line.
 *
 * Why a C helper: ru_maxrss of an exec'd child starts at the RSS high-water mark of the process
 * that forked it (the kernel keeps the old mm's hiwater across execve, see fs/exec.c
 * exec_mmap), so spawning runtimes straight from Python would report Python's ~10 MiB as their
 * peak RSS. This helper is small and static, so the floor it adds is ~100 KiB.
 *
 * build:  gcc -static -O2 -o bench-exec bench-exec.c
 * usage:  bench-exec [-t SECS] [-r REPEAT] [-o FILE] [-k SECS] -- CMD ARG... [::: CMD ARG...]...
 *   The commands run one after another, REPEAT times (default 1); "{}" inside an argument is
 *   replaced by the repetition index (0-based). A failing command stops the whole sequence.
 *   Each command runs in its own process group with stdin=/dev/null and stdout+stderr appended
 *   to FILE (default /dev/null). The helper is a child subreaper (prctl(2)
 *   PR_SET_CHILD_SUBREAPER): orphans of the commands (e.g. a container init) are reparented to
 *   it and reaped while the commands run, so their CPU time is counted too.
 *   -t SECS  per-command timeout (default 10): SIGKILL to the command's process group.
 *   -k SECS  linger: after printing the result and closing stdout, keep reaping orphans (e.g. a
 *            detached container) until none is left or SECS seconds have passed.
 * output (stdout, one line, times in ns from CLOCK_MONOTONIC, CPU in us, RSS in KiB):
 *   {"t_start_ns":..,"t_end_ns":..,"wall_ns":..,"runs":R,"ok":0|1,"failed_cmd":I,"status":S,
 *    "timed_out":0|1,"user_us":..,"sys_us":..,"maxrss_kb":..,"tree_maxrss_kb":..,"step_ns":[..]}
 *   status is the wait status of the last command reaped (exit code, or 128+signal);
 *   maxrss_kb is the max ru_maxrss over the commands themselves (wait4(2): the command and the
 *   children it waited for); tree_maxrss_kb and user/sys come from getrusage(RUSAGE_CHILDREN):
 *   every descendant reaped by the end of the sequence. step_ns: wall time per command index,
 *   summed over the repetitions.
 * exit: 0 all commands exited 0; 1 a command failed or timed out; 64 usage; 70 internal error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CMDS 16

static volatile sig_atomic_t alarmed;

static void on_alarm(int sig) { (void)sig; alarmed = 1; }

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long tv_us(struct timeval tv) { return (long long)tv.tv_sec * 1000000LL + tv.tv_usec; }

/* Copy argv with every "{}" replaced by the repetition index. */
static char **expand(char **argv, int argc, int rep) {
    char **out = calloc((size_t)argc + 1, sizeof *out);
    char idx[24];
    snprintf(idx, sizeof idx, "%d", rep);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *p;
        size_t n = strlen(a) + 1;
        for (p = a; (p = strstr(p, "{}")); p += 2) n += strlen(idx);
        char *w = malloc(n), *o = w;
        while ((p = strstr(a, "{}"))) {
            memcpy(o, a, (size_t)(p - a)); o += p - a;
            o = stpcpy(o, idx);
            a = p + 2;
        }
        strcpy(o, a);
        out[i] = w;
    }
    return out;
}

static pid_t spawn(char **argv, const char *outfile) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    setpgid(0, 0);
    int in = open("/dev/null", O_RDONLY);
    int out = open(outfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0) _exit(127);
    dup2(in, 0); dup2(out, 1); dup2(out, 2);
    execvp(argv[0], argv);
    dprintf(2, "bench-exec: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Reap every child until `pid` exits (or the alarm fires: then kill its group and keep
 * reaping). Returns the wait status of `pid`; *ru gets its rusage. */
static int wait_for(pid_t pid, int timeout_s, struct rusage *ru, int *timed_out) {
    alarmed = 0;
    alarm((unsigned)timeout_s);
    for (;;) {
        int st;
        struct rusage r;
        pid_t got = wait4(-1, &st, 0, &r);
        if (got == pid) { alarm(0); *ru = r; return st; }
        if (got < 0 && errno == EINTR && alarmed) {
            *timed_out = 1; alarmed = 0;
            kill(-pid, SIGKILL); kill(pid, SIGKILL);
        } else if (got < 0 && errno == ECHILD) {
            alarm(0); memset(ru, 0, sizeof *ru); return -1;
        }
    }
}

static int status_code(int st) {
    if (st < 0) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

static void linger(int secs) {
    alarmed = 0;
    alarm((unsigned)secs);
    while (!alarmed) {
        if (wait4(-1, NULL, 0, NULL) < 0 && errno == ECHILD) break;
    }
    alarm(0);
}

static int usage(void) {
    fprintf(stderr, "usage: bench-exec [-t SECS] [-r REPEAT] [-o FILE] [-k SECS] -- CMD ARG... [::: CMD ARG...]...\n");
    return 64;
}

int main(int argc, char **argv) {
    int timeout_s = 10, repeat = 1, linger_s = 0, opt;
    const char *outfile = "/dev/null";
    while ((opt = getopt(argc, argv, "+t:r:o:k:")) != -1) {
        if (opt == 't') timeout_s = atoi(optarg);
        else if (opt == 'r') repeat = atoi(optarg);
        else if (opt == 'o') outfile = optarg;
        else if (opt == 'k') linger_s = atoi(optarg);
        else return usage();
    }
    if (optind >= argc || timeout_s <= 0 || repeat <= 0) return usage();
    char **cmd[MAX_CMDS];
    int cmd_argc[MAX_CMDS], ncmd = 0, start = optind;
    for (int i = optind; i <= argc; i++) {
        if (i < argc && strcmp(argv[i], ":::") != 0) continue;
        if (i == start || ncmd == MAX_CMDS) return usage();
        cmd[ncmd] = &argv[start]; cmd_argc[ncmd++] = i - start; start = i + 1;
    }
    struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART: wait4 returns EINTR */
    sigaction(SIGALRM, &sa, NULL);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) { perror("bench-exec: prctl"); return 70; }

    long long step_ns[MAX_CMDS] = { 0 };
    long maxrss = 0;
    int st = 0, timed_out = 0, failed = -1, runs = 0;
    long long t0 = now_ns();
    for (int rep = 0; rep < repeat && failed < 0; rep++, runs++) {
        for (int c = 0; c < ncmd && failed < 0; c++) {
            char **args = expand(cmd[c], cmd_argc[c], rep);
            struct rusage ru;
            long long ts = now_ns();
            pid_t pid = spawn(args, outfile);
            if (pid < 0) { perror("bench-exec: fork"); return 70; }
            st = wait_for(pid, timeout_s, &ru, &timed_out);
            step_ns[c] += now_ns() - ts;
            if (ru.ru_maxrss > maxrss) maxrss = ru.ru_maxrss;
            if (timed_out || status_code(st) != 0) failed = c;
            for (int i = 0; args[i]; i++) free(args[i]);
            free(args);
        }
    }
    long long t1 = now_ns();
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    struct rusage all;
    getrusage(RUSAGE_CHILDREN, &all);
    printf("{\"t_start_ns\":%lld,\"t_end_ns\":%lld,\"wall_ns\":%lld,\"runs\":%d,\"ok\":%d,"
           "\"failed_cmd\":%d,\"status\":%d,\"timed_out\":%d,\"user_us\":%lld,\"sys_us\":%lld,"
           "\"maxrss_kb\":%ld,\"tree_maxrss_kb\":%ld,\"step_ns\":[",
           t0, t1, t1 - t0, runs, failed < 0, failed, status_code(st), timed_out,
           tv_us(all.ru_utime), tv_us(all.ru_stime), maxrss, all.ru_maxrss);
    for (int c = 0; c < ncmd; c++) printf("%s%lld", c ? "," : "", step_ns[c]);
    printf("]}\n");
    fflush(stdout);
    if (linger_s > 0) {
        close(1);
        linger(linger_s);
    }
    return failed < 0 ? 0 : 1;
}
