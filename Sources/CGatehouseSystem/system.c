#define _GNU_SOURCE
#include <sched.h>
#include <stddef.h>
#include <sys/socket.h>
#include "CGatehouseSystem.h"

_Static_assert(sizeof(struct gatehouse_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(struct gatehouse_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");

int gatehouse_recvmmsg(int fd, struct gatehouse_mmsghdr *messages, unsigned int count, int flags)
{
    return recvmmsg(fd, (struct mmsghdr *)messages, count, flags, NULL);
}

int gatehouse_sendmmsg(int fd, struct gatehouse_mmsghdr *messages, unsigned int count, int flags)
{
    return sendmmsg(fd, (struct mmsghdr *)messages, count, flags);
}

int gatehouse_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }
