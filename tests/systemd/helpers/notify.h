/* notify.h: the client half of the sd_notify protocol (sd_notify(3)), enough for test payloads:
 * one datagram to $NOTIFY_SOCKET ("/path" or "@abstract"), optionally carrying one fd via
 * SCM_RIGHTS. No libsystemd, so the helpers link statically and run in a bare busybox rootfs.
 * Returns 0 when sent, -2 when NOTIFY_SOCKET is unset, -1 (errno set) on socket errors. */
#ifndef SDT_NOTIFY_H
#define SDT_NOTIFY_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
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

/* sd_notify_barrier(3): send BARRIER=1 with the write end of a pipe and wait until the receiver
 * has closed it, i.e. has processed everything this process sent before. A sender that exits
 * right after sending must do this: the manager attributes a datagram to a unit through the
 * sender's cgroup, which it can no longer read once the sender is gone.
 * Returns 0 when acknowledged, 1 on timeout, <0 like notify_send. */
static inline int notify_barrier(int timeout_ms)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    int r = notify_send("BARRIER=1", 9, p[1]);
    close(p[1]);
    if (r == 0) {
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        r = poll(&pf, 1, timeout_ms) > 0 ? 0 : 1;
    }
    close(p[0]);
    return r;
}
#endif
