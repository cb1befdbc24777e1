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
