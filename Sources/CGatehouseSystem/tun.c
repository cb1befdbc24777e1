#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/if_tun.h>
#include "CGatehouseSystem.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

int gatehouse_tun_open(const char *name, char *actual_name, int *offload)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    request.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | (*offload ? IFF_VNET_HDR : 0);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &request) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (*offload) {
        int size = 10; /* struct virtio_net_hdr, no merged buffers */
        const unsigned tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
        /* UDP segmentation offload (Linux 6.2 and later) where the kernel has it. */
        *offload = 1;
        if (ioctl(fd, TUNSETVNETHDRSZ, &size) == 0 && ioctl(fd, TUNSETOFFLOAD, tso | TUN_F_USO4 | TUN_F_USO6) == 0)
            *offload = 3;
        else if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0 || ioctl(fd, TUNSETOFFLOAD, tso) < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
    }
    memcpy(actual_name, request.ifr_name, IFNAMSIZ);
    actual_name[IFNAMSIZ - 1] = 0;
    return fd;
}

/* An ioctl on a throw-away socket of `family`, keeping the ioctl's errno. */
static int socket_ioctl(int family, unsigned long command, void *argument)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int result = ioctl(fd, command, argument);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

static int interface_request(const char *name, unsigned long command, struct ifreq *request, int family)
{
    strncpy(request->ifr_name, name, IFNAMSIZ - 1);
    return socket_ioctl(family, command, request);
}

int gatehouse_interface_up(const char *name, int mtu)
{
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    request.ifr_mtu = mtu;
    if (mtu > 0 && interface_request(name, SIOCSIFMTU, &request, AF_INET) < 0)
        return -1;
    memset(&request, 0, sizeof(request));
    if (interface_request(name, SIOCGIFFLAGS, &request, AF_INET) < 0)
        return -1;
    request.ifr_flags |= IFF_UP | IFF_RUNNING;
    return interface_request(name, SIOCSIFFLAGS, &request, AF_INET);
}

int gatehouse_interface_add_ipv4(const char *name, uint32_t address_be, int prefix_length)
{
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    struct sockaddr_in *address = (struct sockaddr_in *)&request.ifr_addr;
    address->sin_family = AF_INET;
    address->sin_addr.s_addr = address_be;
    if (interface_request(name, SIOCSIFADDR, &request, AF_INET) < 0)
        return -1;
    memset(&request, 0, sizeof(request));
    struct sockaddr_in *mask = (struct sockaddr_in *)&request.ifr_netmask;
    mask->sin_family = AF_INET;
    mask->sin_addr.s_addr = prefix_length == 0 ? 0 : htonl(~(uint32_t)0 << (32 - prefix_length));
    return interface_request(name, SIOCSIFNETMASK, &request, AF_INET);
}

/* The kernel's struct in6_ifreq (linux/ipv6.h, which clashes with netinet/in.h). */
struct gatehouse_in6_ifreq {
    struct in6_addr address;
    uint32_t prefix_length;
    int interface_index;
};

int gatehouse_interface_add_ipv6(const char *name, const uint8_t address[16], int prefix_length)
{
    unsigned int index = if_nametoindex(name);
    if (index == 0)
        return -1;
    struct gatehouse_in6_ifreq request;
    memset(&request, 0, sizeof(request));
    memcpy(&request.address, address, 16);
    request.prefix_length = (uint32_t)prefix_length;
    request.interface_index = (int)index;
    return socket_ioctl(AF_INET6, SIOCSIFADDR, &request);
}

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_addr.h>

int gatehouse_address(const char *name, int add, int family, const uint8_t *address, int prefix_length)
{
    unsigned int index = if_nametoindex(name);
    if (index == 0)
        return -1;
    int length = family == 4 ? 4 : 16;
    struct {
        struct nlmsghdr header;
        struct ifaddrmsg message;
        char attributes[64];
    } request;
    memset(&request, 0, sizeof(request));
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
    request.header.nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
    request.header.nlmsg_seq = 1;
    request.message.ifa_family = family == 4 ? AF_INET : AF_INET6;
    request.message.ifa_prefixlen = (unsigned char)prefix_length;
    request.message.ifa_flags = family == 6 ? IFA_F_NODAD : 0;
    request.message.ifa_scope = RT_SCOPE_UNIVERSE;
    request.message.ifa_index = (int)index;
    unsigned short types[2] = {IFA_LOCAL, IFA_ADDRESS};
    for (int i = 0; i < 2; i++) {
        struct rtattr *attribute = (struct rtattr *)((char *)&request + NLMSG_ALIGN(request.header.nlmsg_len));
        attribute->rta_type = types[i];
        attribute->rta_len = (unsigned short)RTA_LENGTH(length);
        memcpy(RTA_DATA(attribute), address, (size_t)length);
        request.header.nlmsg_len = NLMSG_ALIGN(request.header.nlmsg_len) + RTA_ALIGN(attribute->rta_len);
    }
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -1;
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof(kernel));
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd, &request, request.header.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    char answer[1024];
    ssize_t received = recv(fd, answer, sizeof(answer), 0);
    int saved = errno;
    close(fd);
    if (received < 0) {
        errno = saved;
        return -1;
    }
    struct nlmsghdr *reply = (struct nlmsghdr *)answer;
    if (received >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && reply->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *error = (struct nlmsgerr *)NLMSG_DATA(reply);
        if (error->error != 0) {
            errno = -error->error;
            return -1;
        }
    }
    return 0;
}

int gatehouse_netlink_watch(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd < 0)
        return -1;
    struct sockaddr_nl local;
    memset(&local, 0, sizeof(local));
    local.nl_family = AF_NETLINK;
    local.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int gatehouse_netlink_changes(int fd, int *indexes, int capacity)
{
    int count = 0;
    char buffer[8192];
    for (;;) {
        ssize_t received = recv(fd, buffer, sizeof(buffer), 0);
        if (received < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return count;
            if (errno == ENOBUFS)
                continue; /* events were lost: what comes next still counts */
            return count > 0 ? count : -1;
        }
        for (struct nlmsghdr *message = (struct nlmsghdr *)buffer; NLMSG_OK(message, (unsigned int)received);
             message = NLMSG_NEXT(message, received)) {
            int index = -1;
            if ((message->nlmsg_type == RTM_NEWADDR || message->nlmsg_type == RTM_DELADDR)
                && message->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifaddrmsg)))
                index = (int)((struct ifaddrmsg *)NLMSG_DATA(message))->ifa_index;
            else if ((message->nlmsg_type == RTM_NEWLINK || message->nlmsg_type == RTM_DELLINK)
                     && message->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifinfomsg)))
                index = ((struct ifinfomsg *)NLMSG_DATA(message))->ifi_index;
            if (index >= 0 && count < capacity)
                indexes[count++] = index;
        }
    }
}

#include <net/route.h>

/* The kernel's struct in6_rtmsg (linux/ipv6_route.h). */
struct gatehouse_in6_rtmsg {
    struct in6_addr dst;
    struct in6_addr src;
    struct in6_addr gateway;
    uint32_t type;
    uint16_t dst_len;
    uint16_t src_len;
    uint32_t metric;
    unsigned long info;
    uint32_t flags;
    int ifindex;
};

int gatehouse_route(const char *name, int add, int family, const uint8_t *address, int prefix_length)
{
    unsigned long command = add ? SIOCADDRT : SIOCDELRT;
    if (family == 4) {
        struct rtentry route;
        memset(&route, 0, sizeof(route));
        struct sockaddr_in *destination = (struct sockaddr_in *)&route.rt_dst;
        destination->sin_family = AF_INET;
        memcpy(&destination->sin_addr.s_addr, address, 4);
        struct sockaddr_in *mask = (struct sockaddr_in *)&route.rt_genmask;
        mask->sin_family = AF_INET;
        mask->sin_addr.s_addr = prefix_length == 0 ? 0 : htonl(~(uint32_t)0 << (32 - prefix_length));
        route.rt_flags = RTF_UP | (prefix_length == 32 ? RTF_HOST : 0);
        route.rt_dev = (char *)name;
        return socket_ioctl(AF_INET, command, &route);
    }
    unsigned int index = if_nametoindex(name);
    if (index == 0)
        return -1;
    struct gatehouse_in6_rtmsg route;
    memset(&route, 0, sizeof(route));
    memcpy(&route.dst, address, 16);
    route.dst_len = (uint16_t)prefix_length;
    route.metric = 1;
    route.flags = RTF_UP | (prefix_length == 128 ? RTF_HOST : 0);
    route.ifindex = (int)index;
    return socket_ioctl(AF_INET6, command, &route);
}
