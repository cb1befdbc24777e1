#define _GNU_SOURCE
#include <malloc.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
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

int gatehouse_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int gatehouse_epoll_add(int epoll, int fd)
{
    struct epoll_event event = { .events = EPOLLIN, .data.fd = fd };
    return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}

int gatehouse_epoll_remove(int epoll, int fd) { return epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL); }

int gatehouse_epoll_watch_writable(int epoll, int fd, int writable)
{
    struct epoll_event event = { .events = EPOLLIN | (writable ? EPOLLOUT : 0), .data.fd = fd };
    return epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event);
}

int gatehouse_epoll_wait(int epoll, int *ready, int capacity, int timeout_ms)
{
    struct epoll_event events[256];
    if (capacity > 256)
        capacity = 256;
    int count = epoll_wait(epoll, events, capacity, timeout_ms);
    for (int i = 0; i < count; i++)
        ready[i] = events[i].data.fd;
    return count;
}

int gatehouse_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int gatehouse_eventfd_signal(int fd)
{
    uint64_t one = 1;
    return (int)write(fd, &one, sizeof one);
}

int gatehouse_eventfd_drain(int fd)
{
    uint64_t value;
    return (int)read(fd, &value, sizeof value);
}

int gatehouse_enable_gro(int fd)
{
    int one = 1;
    return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
}

size_t gatehouse_gro_control_size(void)
{
    return CMSG_SPACE(sizeof(int));
}

int gatehouse_gro_segment_size(const struct msghdr *message)
{
    for (struct cmsghdr *header = CMSG_FIRSTHDR((struct msghdr *)message); header != NULL;
         header = CMSG_NXTHDR((struct msghdr *)message, header)) {
        if (header->cmsg_level == SOL_UDP && header->cmsg_type == UDP_GRO && header->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int size;
            memcpy(&size, CMSG_DATA(header), sizeof size);
            return size;
        }
    }
    return 0;
}

long gatehouse_send_segmented(int fd, const struct iovec *buffers, int count, const void *address,
                              unsigned int address_length, unsigned short segment_size)
{
    char control[CMSG_SPACE(sizeof(unsigned short))];
    memset(control, 0, sizeof control);
    struct msghdr message = {
        .msg_name = (void *)address,
        .msg_namelen = address_length,
        .msg_iov = (struct iovec *)buffers,
        .msg_iovlen = (size_t)count,
        .msg_control = control,
        .msg_controllen = sizeof control,
    };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_UDP;
    header->cmsg_type = UDP_SEGMENT;
    header->cmsg_len = CMSG_LEN(sizeof(unsigned short));
    memcpy(CMSG_DATA(header), &segment_size, sizeof segment_size);
    return (long)sendmsg(fd, &message, 0);
}

int gatehouse_limit_malloc_arenas(int count) {
    return mallopt(M_ARENA_MAX, count);
}
