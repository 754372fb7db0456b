// SPDX-License-Identifier: Apache-2.0
// XDP drop of banned sources, for measuring the XDP lever of issue 12 in
// scripts/bench-sustained.sh (banned arms "xdp-generic" and "xdp-native"). It is not part of
// sipwall: the daemon does not load it. It does what the ban chain does for a banned packet, so
// the measured cost compares like with like:
//   * the source address is looked up in a longest-prefix-match map (an IPv4 and an IPv6 trie,
//     like the interval ban sets: single addresses and aggregates alike);
//   * the value is the ban's expiry on the kernel's monotonic clock (0: permanent), compared
//     with bpf_ktime_get_ns(), like a timeout element of an nft set;
//   * only guarded destination ports are dropped (a hash of ports, like the ban scope), and a
//     non-first fragment of a banned source is dropped whatever its port;
//   * everything else passes to the kernel's stack (and to sipwall's ban chain).
// Build: clang -O2 -g -target bpf -I/usr/include/$(gcc -dumpmachine) -c ban_drop.c
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct key4 {
    __u32 prefixlen;
    __u8 addr[4];
};
struct key6 {
    __u32 prefixlen;
    __u8 addr[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __type(key, struct key4);
    __type(value, __u64);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} ban4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __type(key, struct key6);
    __type(value, __u64);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} ban6 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u16);  // destination port, network order
    __type(value, __u8);
    __uint(max_entries, 64);
} guarded_ports SEC(".maps");

static __always_inline int banned(__u64 *expiry) {
    return expiry && (*expiry == 0 || *expiry > bpf_ktime_get_ns());
}

static __always_inline int guarded(void *l4, void *end, __u8 proto) {
    if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
        return 0;
    struct udphdr *udp = l4;  // TCP's destination port is at the same offset
    if ((void *)(udp + 1) > end)
        return 0;
    __u16 port = udp->dest;
    return bpf_map_lookup_elem(&guarded_ports, &port) != 0;
}

SEC("xdp")
int ban_drop(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end || ip->ihl < 5)
            return XDP_PASS;
        struct key4 key = {.prefixlen = 32};
        __builtin_memcpy(key.addr, &ip->saddr, 4);
        if (!banned(bpf_map_lookup_elem(&ban4, &key)))
            return XDP_PASS;
        if (ip->frag_off & bpf_htons(0x1fff))
            return XDP_DROP;  // a later fragment: no port to read, banned source
        return guarded((void *)ip + ip->ihl * 4, end, ip->protocol) ? XDP_DROP : XDP_PASS;
    }
    if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end)
            return XDP_PASS;
        struct key6 key = {.prefixlen = 128};
        __builtin_memcpy(key.addr, &ip6->saddr, 16);
        if (!banned(bpf_map_lookup_elem(&ban6, &key)))
            return XDP_PASS;
        // extension headers (fragments included) are left to the ban chain
        return guarded(ip6 + 1, end, ip6->nexthdr) ? XDP_DROP : XDP_PASS;
    }
    return XDP_PASS;
}

// No GPL-only helper is used, so the kernel loads it under the project's licence.
char LICENSE[] SEC("license") = "Apache-2.0";
