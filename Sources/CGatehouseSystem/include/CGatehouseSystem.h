#ifndef GATEHOUSE_CGATEHOUSESYSTEM_H
#define GATEHOUSE_CGATEHOUSESYSTEM_H

/* System calls Swift's Glibc module does not expose because they need _GNU_SOURCE. */

#include <stddef.h>
#include <sys/socket.h>

/* Same layout as glibc's struct mmsghdr (which is only declared with _GNU_SOURCE); setns.c checks it. */
struct gatehouse_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/* recvmmsg(2) and sendmmsg(2): several datagrams per system call. Return what the calls return;
 * errno as they set it. `timeout` of recvmmsg is always NULL here (sockets are non-blocking). */
int gatehouse_recvmmsg(int fd, struct gatehouse_mmsghdr *messages, unsigned int count, int flags);
int gatehouse_sendmmsg(int fd, struct gatehouse_mmsghdr *messages, unsigned int count, int flags);

/* setns(2) for network namespaces (CLONE_NEWNET): moves the calling thread. */
int gatehouse_setns_net(int fd);

#endif
