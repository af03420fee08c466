/* sd-notify-send.c: tiny static sd_notify sender for the benchmark container (no libsystemd).
 *
 * Implements the client side of sd_notify(3): one AF_UNIX SOCK_DGRAM datagram per message to
 * $NOTIFY_SOCKET (a path, or "@name" for an abstract address).
 *
 * build:  gcc -static -O2 -o sd-notify-send sd-notify-send.c
 * usage:  sd-notify-send OP...
 *   send:TEXT                 one datagram: TEXT ("\n" escapes expanded) + "\nX_T=<ns>"
 *   raw:TEXT                  one datagram: TEXT as given (escapes expanded), no timestamp
 *   burst:TAG:COUNT:GAP_US    COUNT datagrams "X_TAG=TAG\nX_SEQ=<i>\nX_T=<ns>", GAP_US apart
 *   sleep:MS                  sleep MS milliseconds
 *   <ns> is CLOCK_MONOTONIC in nanoseconds, read just before sendmsg(2); the benchmark does not
 *   use a time namespace, so it is the host's clock.
 * stderr, one line per op (the benchmark parses these):
 *   sd-notify-send op=send t=<ns> rc=<bytes sent or -errno>
 *   sd-notify-send op=burst tag=<TAG> sent=<n> errors=<n> t_first=<ns> t_last=<ns> errno=<last>
 * Sends use a 1 s SO_SNDTIMEO, so a relay that stopped reading never blocks the container for
 * long; errors are counted, never fatal.
 * exit: 0 done; 2 NOTIFY_SOCKET unset or unusable; 64 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_us(long us) {
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Expand "\n" escapes in place. */
static void unescape(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] == 'n') { *w++ = '\n'; r++; }
        else *w++ = *r;
    }
    *w = 0;
}

/* Connect a datagram socket to $NOTIFY_SOCKET; -1 on error (reported on stderr). */
static int open_notify(void) {
    const char *ns = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (!ns || !*ns) { fprintf(stderr, "sd-notify-send: NOTIFY_SOCKET not set\n"); return -1; }
    size_t n = strlen(ns);
    if (n >= sizeof sa.sun_path) { fprintf(stderr, "sd-notify-send: NOTIFY_SOCKET too long\n"); return -1; }
    memcpy(sa.sun_path, ns, n);
    if (ns[0] == '@') sa.sun_path[0] = 0;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (ns[0] != '@'));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct timeval tmo = { .tv_sec = 1 };
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof tmo) != 0 ||
        connect(fd, (struct sockaddr *)&sa, len) != 0) {
        fprintf(stderr, "sd-notify-send: connect %s: %s\n", ns, strerror(errno));
        return -1;
    }
    return fd;
}

/* Send buf; returns bytes sent or -errno. */
static long send_one(int fd, const char *buf, size_t len) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    return n < 0 ? -(long)errno : (long)n;
}

static void op_send(int fd, char *text, int stamp) {
    char buf[4096];
    unescape(text);
    long long t = now_ns();
    int len = stamp ? snprintf(buf, sizeof buf, "%s\nX_T=%lld", text, t)
                    : snprintf(buf, sizeof buf, "%s", text);
    if (len >= (int)sizeof buf) len = (int)sizeof buf - 1;
    long rc = send_one(fd, buf, (size_t)len);
    fprintf(stderr, "sd-notify-send op=send t=%lld rc=%ld\n", t, rc);
}

static int op_burst(int fd, char *spec) {
    char tag[64];
    long count, gap;
    if (sscanf(spec, "%63[^:]:%ld:%ld", tag, &count, &gap) != 3 || count < 0 || gap < 0) return -1;
    long sent = 0, errors = 0, last_err = 0;
    long long t_first = 0, t_last = 0;
    for (long i = 0; i < count; i++) {
        char buf[256];
        if (i && gap) sleep_us(gap);
        long long t = now_ns();
        int len = snprintf(buf, sizeof buf, "X_TAG=%s\nX_SEQ=%ld\nX_T=%lld", tag, i, t);
        long rc = send_one(fd, buf, (size_t)len);
        if (rc < 0) { errors++; last_err = -rc; if (rc == -EAGAIN || rc == -ECONNREFUSED) break; continue; }
        if (!sent++) t_first = t;
        t_last = t;
    }
    fprintf(stderr, "sd-notify-send op=burst tag=%s sent=%ld errors=%ld t_first=%lld t_last=%lld errno=%ld\n",
            tag, sent, errors, t_first, t_last, last_err);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sd-notify-send send:TEXT|raw:TEXT|burst:TAG:COUNT:GAP_US|sleep:MS...\n");
        return 64;
    }
    int fd = open_notify();
    if (fd < 0) return 2;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!strncmp(a, "send:", 5)) op_send(fd, a + 5, 1);
        else if (!strncmp(a, "raw:", 4)) op_send(fd, a + 4, 0);
        else if (!strncmp(a, "sleep:", 6)) sleep_us(atol(a + 6) * 1000L);
        else if (strncmp(a, "burst:", 6) || op_burst(fd, a + 6) != 0) {
            fprintf(stderr, "sd-notify-send: bad op: %s\n", a);
            return 64;
        }
    }
    return 0;
}
