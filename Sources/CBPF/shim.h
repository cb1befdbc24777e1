#ifndef GATEHOUSE_CBPF_SHIM_H
#define GATEHOUSE_CBPF_SHIM_H
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#endif
