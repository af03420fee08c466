/* sd-notify-send: send sd_notify(3) datagrams from a shell script, statically linked so that it
 * runs in a bare busybox container. Part of the pier systemd test suite (tests/systemd).
 *
 * usage: sd-notify-send [-j] [-M] [-n] [-q] MSG... [-- CMD ARG...]
 *   MSG  one datagram per MSG, e.g. READY=1 STATUS=hello WATCHDOG=1; "\n" in MSG becomes a newline
 *   CMD  after sending, exec CMD in this process, so a shell can notify as itself (its own pid:
 *        `exec sd-notify-send READY=1 -- sh next.sh`), which NotifyAccess=main wants
 *   -j   send all MSGs as ONE datagram, joined with newlines (systemd applies a datagram at once)
 *   -M   append MONOTONIC_USEC=<CLOCK_MONOTONIC now, in us> to each datagram (RELOADING=1 wants it)
 *   -n   no barrier; by default the sender ends with the sd_notify_barrier(3) handshake (5 s at
 *        most, like systemd-notify) so the manager still sees it alive when it processes MSGs
 *   -q   no trace; otherwise one line per datagram on stderr: "sd-notify-send[PID]: MSG"
 * exit: 0 all sent, 2 NOTIFY_SOCKET unset, 3 send failed, 4 barrier not acknowledged, 64 usage.
 */
#include "notify.h"
#include <stdio.h>
#include <time.h>

static int quiet;

static void unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] == 'n') {
            *w++ = '\n';
            r++;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
}

/* Sends buf (NUL-terminated, with room for the MONOTONIC_USEC suffix); returns the exit code. */
static int send_one(char *buf, int add_monotonic)
{
    if (add_monotonic) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned long long us = (unsigned long long)ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;
        sprintf(buf + strlen(buf), "%sMONOTONIC_USEC=%llu", *buf ? "\n" : "", us);
    }
    int r = notify_send(buf, strlen(buf), -1);
    if (r == -2) {
        fprintf(stderr, "sd-notify-send[%d]: NOTIFY_SOCKET is not set\n", (int)getpid());
        return 2;
    }
    if (r < 0) {
        fprintf(stderr, "sd-notify-send[%d]: send to %s failed: %s\n", (int)getpid(),
                getenv("NOTIFY_SOCKET"), strerror(errno));
        return 3;
    }
    if (!quiet) {
        for (char *p = buf; *p; p++)
            if (*p == '\n')
                *p = '|';
        fprintf(stderr, "sd-notify-send[%d]: %s\n", (int)getpid(), buf);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int join = 0, mono = 0, barrier = 1, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-j"))
            join = 1;
        else if (!strcmp(argv[i], "-M"))
            mono = 1;
        else if (!strcmp(argv[i], "-n"))
            barrier = 0;
        else if (!strcmp(argv[i], "-q"))
            quiet = 1;
        else
            break;
    }
    int end = i;
    while (end < argc && strcmp(argv[end], "--"))
        end++;
    if (i >= end || end + 1 == argc) {
        fprintf(stderr, "usage: sd-notify-send [-j] [-M] [-n] [-q] MSG... [-- CMD ARG...]\n");
        return 64;
    }
    size_t total = 64;
    for (int k = i; k < end; k++)
        total += strlen(argv[k]) + 1;
    char *buf = calloc(1, total);
    if (!buf)
        return 3;
    for (int k = i; k < end; k++) {
        unescape(argv[k]);
        if (!join)
            buf[0] = 0;
        if (join && *buf)
            strcat(buf, "\n");
        strcat(buf, argv[k]);
        if (!join) {
            int rc = send_one(buf, mono);
            if (rc)
                return rc;
        }
    }
    if (join) {
        int rc = send_one(buf, mono);
        if (rc)
            return rc;
    }
    if (barrier && notify_barrier(5000) != 0) {
        fprintf(stderr, "sd-notify-send[%d]: barrier not acknowledged within 5 s\n", (int)getpid());
        return 4;
    }
    if (end < argc) {
        execvp(argv[end + 1], &argv[end + 1]);
        fprintf(stderr, "sd-notify-send[%d]: exec %s: %s\n", (int)getpid(), argv[end + 1],
                strerror(errno));
        return 3;
    }
    return 0;
}
