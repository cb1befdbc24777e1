#ifndef GATEHOUSE_CGATEHOUSESYSTEM_H
#define GATEHOUSE_CGATEHOUSESYSTEM_H

/* System calls Swift's Glibc module does not expose because they need _GNU_SOURCE. */

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Same layout as glibc's struct mmsghdr (which is only declared with _GNU_SOURCE); setns.c checks it. */
struct gatehouse_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/* recvmmsg(2) and sendmmsg(2): several datagrams per system call. Return what the calls return;
 * errno as they set it. `timeout` of recvmmsg is always NULL here (sockets are non-blocking). */
int gatehouse_recvmmsg(int fd, struct gatehouse_mmsghdr *messages, unsigned int count, int flags);
int gatehouse_sendmmsg(int fd, struct gatehouse_mmsghdr *messages, unsigned int count, int flags);

/* Sends `count` buffers to one destination as a single UDP GSO super-datagram (UDP_SEGMENT): the
 * kernel splits it into datagrams of `segment_size` bytes (the last may be shorter). One pass through
 * the socket layer and routing for up to 64 datagrams. Returns bytes sent or -1 with errno. */
long gatehouse_send_segmented(int fd, const struct iovec *buffers, int count, const void *address,
                              unsigned int address_length, unsigned short segment_size);

/* UDP GRO on receive (UDP_GRO): the kernel may hand several datagrams of one flow to recvmmsg as one
 * buffer, with their segment size in a control message. `gatehouse_enable_gro` returns 0, or -1 with
 * errno where the kernel has no UDP GRO; `gatehouse_gro_control_size` is the control room one message
 * needs for it; `gatehouse_gro_segment_size` is the segment size of a received message, or 0 when it
 * holds one datagram. */
int gatehouse_enable_gro(int fd);
size_t gatehouse_gro_control_size(void);
int gatehouse_gro_segment_size(const struct msghdr *message);

/* epoll without struct epoll_event, which glibc declares packed on x86_64 (Swift cannot import that
 * layout reliably). `gatehouse_epoll_add` registers `fd` for reading with `fd` as its token;
 * `gatehouse_epoll_wait` writes the ready descriptors to `ready` and returns how many, or -1. */
int gatehouse_epoll_create(void);
int gatehouse_epoll_add(int epoll, int fd);
int gatehouse_epoll_remove(int epoll, int fd);
/* Also wakes for `fd` when it becomes writable (a send buffer that was full has room), or stops. */
int gatehouse_epoll_watch_writable(int epoll, int fd, int writable);
int gatehouse_epoll_wait(int epoll, int *ready, int capacity, int timeout_ms);

/* An eventfd to wake a thread parked in epoll_wait. */
int gatehouse_eventfd(void);
int gatehouse_eventfd_signal(int fd);
int gatehouse_eventfd_drain(int fd);

/* setns(2) for network namespaces (CLONE_NEWNET): moves the calling thread. */
int gatehouse_setns_net(int fd);

/* mallopt(M_ARENA_MAX, count): at most `count` malloc arenas from now on. Returns 1 on success. */
int gatehouse_limit_malloc_arenas(int count);

/* TUN devices (tun.c). `gatehouse_tun_open` opens one queue of the multi-queue layer-3 TUN device
 * `name` (made if missing; "" lets the kernel pick), non-blocking, without packet information: every
 * read or write is one IP packet. Writes the device's name (IFNAMSIZ bytes) to `actual_name`. Several
 * queues of one device may be open at once; the device goes when the last is closed. -1 and errno.
 * With `*offload` non-zero, every read and write starts with a 10-byte struct virtio_net_hdr and the
 * device takes and gives TCP super-packets (TSO/GRO, checksums left to the reader), and UDP ones too
 * where the kernel has USO: `*offload` becomes 1 (TCP) or 3 (TCP and UDP). A device-wide setting:
 * every queue of one device must be opened alike. */
int gatehouse_tun_open(const char *name, char *actual_name, int *offload);
/* Sets the MTU (when > 0) and brings the interface up. 0, or -1 and errno. */
int gatehouse_interface_up(const char *name, int mtu);
/* Adds an address to an interface (network byte order for IPv4). 0, or -1 and errno. */
int gatehouse_interface_add_ipv4(const char *name, uint32_t address_be, int prefix_length);
int gatehouse_interface_add_ipv6(const char *name, const uint8_t address[16], int prefix_length);
/* A non-blocking rtnetlink socket that hears of links and addresses coming and going (IPv4 and IPv6):
 * the fd, or -1 and errno. */
int gatehouse_netlink_watch(void);
/* Drains what the socket heard: writes the interface index of each link or address change (at most
 * `capacity`) and returns how many, 0 when nothing is waiting, -1 and errno on failure. */
int gatehouse_netlink_changes(int fd, int *indexes, int capacity);
/* Adds (add != 0) or deletes an address of an interface over rtnetlink (an address added beside the
 * others, never in place of one; IPv6 without duplicate address detection): family 4 (4 address
 * bytes, network order) or 6 (16 bytes). 0, or -1 and errno. */
int gatehouse_address(const char *name, int add, int family, const uint8_t *address, int prefix_length);
/* Adds (add != 0) or deletes a route to `address`/`prefix_length` through the interface; family 4
 * (4 address bytes, network order) or 6 (16 bytes). 0, or -1 and errno. */
int gatehouse_route(const char *name, int add, int family, const uint8_t *address, int prefix_length);

#endif
