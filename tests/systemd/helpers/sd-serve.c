/* sd-serve: a tiny stream server for socket-activation and fd-store tests; statically linked so
 * that it runs in a bare busybox container. Part of the pier systemd test suite (tests/systemd).
 *
 * usage: sd-serve [-u PATH] [-n NAME] [-x FD]
 *   The listening socket is fd 3 when sd_listen_fds(3) would accept it (LISTEN_FDS >= 1 and
 *   LISTEN_PID equal to our pid): origin=inherited. Otherwise, with -u, it binds a new AF_UNIX
 *   stream socket at PATH and hands it to the service manager's fd store (FDSTORE=1, FDNAME=NAME,
 *   the fd in SCM_RIGHTS): origin=created. Then READY=1 + STATUS, and every accepted connection
 *   gets one line and is closed:
 *     origin=O id=UUID pid=P LISTEN_PID=.. LISTEN_FDS=.. LISTEN_FDNAMES=.. fd=F sockname=S extra=E
 *   (unset variables print as "-"; E is the first line read from -x FD, e.g. a --preserve-fds fd).
 *   The same line is printed on stdout at start. SIGTERM: exit 0 after the current connection.
 * exit: 0 on SIGTERM, 3 no socket to serve, 4 socket errors.
 */
/* The client half of sd_notify(3), enough for FDSTORE and READY: one datagram to $NOTIFY_SOCKET
 * ("/path" or "@abstract"), optionally carrying one fd via SCM_RIGHTS. No libsystemd, so it links
 * statically. Returns 0 when sent, -2 when NOTIFY_SOCKET is unset, -1 (errno set) on socket errors.
 * (The suite's sender is the Rust sd-notify-send; this server stays C because it must exit 0 on
 * SIGTERM, which takes a signal handler.) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static inline int notify_send(const char *msg, size_t len, int fd)
{
    const char *addr = getenv("NOTIFY_SOCKET");
    if (!addr || !*addr)
        return -2;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t n = strlen(addr);
    if (n >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, addr, n);
    socklen_t salen = offsetof(struct sockaddr_un, sun_path) + n;
    if (addr[0] == '@')
        sa.sun_path[0] = 0; /* abstract: no trailing NUL counted */
    else
        salen += 1;

    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
    struct msghdr mh = { .msg_name = &sa, .msg_namelen = salen, .msg_iov = &iov, .msg_iovlen = 1 };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    if (fd >= 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof ctl.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t r = sendmsg(s, &mh, MSG_NOSIGNAL);
    int saved = errno;
    close(s);
    errno = saved;
    return r < 0 ? -1 : 0;
}

#include <signal.h>
#include <stdio.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static const char *env_or_dash(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : "-";
}

/* fd 3 when the LISTEN_* variables pass sd_listen_fds(3)'s checks, else -1. */
static int inherited_fd(void)
{
    const char *n = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
    if (!n || atoi(n) < 1 || !pid || atol(pid) != (long)getpid())
        return -1;
    return 3;
}

static int create_and_store(const char *path, const char *name)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (fd < 0 || strlen(path) >= sizeof sa.sun_path)
        return -1;
    strcpy(sa.sun_path, path);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0)
        return -1;
    char msg[300];
    snprintf(msg, sizeof msg, "FDSTORE=1\nFDNAME=%s", name);
    if (notify_send(msg, strlen(msg), fd) < 0)
        fprintf(stderr, "sd-serve: FDSTORE not sent: %s\n", strerror(errno));
    return fd;
}

static void read_line(int fd, char *out, size_t size)
{
    ssize_t n = read(fd, out, size - 1);
    out[n > 0 ? n : 0] = 0;
    out[strcspn(out, "\n")] = 0;
    if (!*out)
        snprintf(out, size, "-");
}

static void sock_name(int fd, char *out, size_t size)
{
    struct sockaddr_un sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX || !sa.sun_path[0])
        snprintf(out, size, "-");
    else
        snprintf(out, size, "%s", sa.sun_path);
}

int main(int argc, char **argv)
{
    const char *path = NULL, *name = "sock";
    int extra_fd = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-u"))
            path = argv[i + 1];
        else if (!strcmp(argv[i], "-n"))
            name = argv[i + 1];
        else if (!strcmp(argv[i], "-x"))
            extra_fd = atoi(argv[i + 1]);
    }
    struct sigaction act = { .sa_handler = on_term }; /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGTERM, &act, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *origin = "inherited";
    int fd = inherited_fd();
    if (fd < 0 && path) {
        origin = "created";
        fd = create_and_store(path, name);
    }
    if (fd < 0) {
        fprintf(stderr, "sd-serve: no socket (LISTEN_FDS=%s LISTEN_PID=%s pid=%d, no usable -u)\n",
                env_or_dash("LISTEN_FDS"), env_or_dash("LISTEN_PID"), (int)getpid());
        return 3;
    }
    char id[64], extra[128], sname[110], line[1024];
    int idfd = open("/proc/sys/kernel/random/uuid", O_RDONLY);
    read_line(idfd, id, sizeof id);
    close(idfd);
    if (extra_fd >= 0)
        read_line(extra_fd, extra, sizeof extra);
    else
        snprintf(extra, sizeof extra, "-");
    sock_name(fd, sname, sizeof sname);
    int len = snprintf(line, sizeof line,
                       "origin=%s id=%s pid=%d LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s fd=%d sockname=%s extra=%s\n",
                       origin, id, (int)getpid(), env_or_dash("LISTEN_PID"), env_or_dash("LISTEN_FDS"),
                       env_or_dash("LISTEN_FDNAMES"), fd, sname, extra);
    printf("sd-serve: %s", line);
    fflush(stdout);
    char ready[128];
    snprintf(ready, sizeof ready, "READY=1\nSTATUS=sd-serve %s %s", origin, id);
    notify_send(ready, strlen(ready), -1);

    while (!stop) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("sd-serve: accept");
            return 4;
        }
        if (send(c, line, (size_t)len, MSG_NOSIGNAL) < 0)
            perror("sd-serve: send");
        close(c);
    }
    printf("sd-serve: SIGTERM, exiting 0\n");
    return 0;
}
