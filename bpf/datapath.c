//go:build ignore

// The lab pod network datapath: three small TC programs and four maps.
//
// Every pod has a veth pair; its host-side end (in the node's network
// namespace) carries two programs:
//
//   from_pod  (ingress of the host veth = packets the pod sends)
//       to a pod on this node      -> straight into that pod (bpf_redirect_peer)
//       to a pod on another node   -> out of the node through the kernel's
//                                     FIB (bpf_fib_lookup + bpf_redirect_neigh)
//       anything else              -> the host stack (services through
//                                     kube-proxy, masquerade to the outside)
//   to_pod    (egress of the host veth = packets the host stack sends to
//             the pod): only counts them.
//
// The node's uplink carries one program:
//
//   from_uplink (ingress): a packet from another node's pod for a pod on
//             this node goes straight into the pod; everything else goes
//             to the host stack.
//
// Only IPv4 is handled; every other packet (ARP, IPv6, ...) goes to the
// host stack unchanged, so the kernel's plain path is always the fallback.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2

char __license[] SEC("license") = "GPL";

// An endpoint is a pod on this node, keyed by its IPv4 address.
struct endpoint {
	__u32 ifindex;     // the host-side veth
	__u8 pod_mac[6];   // MAC of eth0 inside the pod
	__u8 host_mac[6];  // MAC of the host-side veth (the pod's gateway)
};

// Counters of one endpoint. rx = towards the pod, tx = from the pod.
struct counters {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
};

// A pod CIDR of another node, for the longest-prefix-match trie.
struct cidr_key {
	__u32 prefixlen;
	__be32 addr;
};

// Written by the CNI plugin on ADD, removed on DEL.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __be32);
	__type(value, struct endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

// One entry per endpoint, created with it. Per CPU so that two cores never
// write the same cache line; lab-node sums the CPUs when it reads them.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __be32);
	__type(value, struct counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoint_counters SEC(".maps");

// Pod CIDRs of the other nodes (value: that node's IP, for humans). Kept in
// sync with the Node objects by the lab-node daemon, next to the routes.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct cidr_key);
	__type(value, __be32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} remote_cidrs SEC(".maps");

static __always_inline void count_rx(__be32 ip, __u64 bytes)
{
	struct counters *c = bpf_map_lookup_elem(&endpoint_counters, &ip);
	if (c) {
		c->rx_packets++;
		c->rx_bytes += bytes;
	}
}

static __always_inline void count_tx(__be32 ip, __u64 bytes)
{
	struct counters *c = bpf_map_lookup_elem(&endpoint_counters, &ip);
	if (c) {
		c->tx_packets++;
		c->tx_bytes += bytes;
	}
}

// parse returns the Ethernet and IPv4 headers of an IPv4 packet, or 0 when
// the packet is something else or too short.
static __always_inline int parse(struct __sk_buff *skb, struct ethhdr **eth, struct iphdr **ip)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	*eth = data;
	*ip = data + sizeof(struct ethhdr);
	if ((void *)(*ip + 1) > data_end)
		return 0;
	if ((*eth)->h_proto != bpf_htons(ETH_P_IP) || (*ip)->ihl < 5)
		return 0;
	return 1;
}

// forwarding is a routed hop: the TTL goes down by one and the IPv4 header
// checksum is patched incrementally, as the kernel's ip_decrease_ttl does.
static __always_inline void decrease_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
}

// deliver hands the packet to the local pod ep: gateway MAC as source, the
// pod's MAC as destination, straight into the pod's netns.
static __always_inline int deliver(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip,
				   struct endpoint *ep)
{
	decrease_ttl(ip);
	__builtin_memcpy(eth->h_source, ep->host_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, ep->pod_mac, ETH_ALEN);
	count_rx(ip->daddr, skb->len);
	return bpf_redirect_peer(ep->ifindex, 0);
}

// to_remote_node sends the packet to the node that owns the destination's
// pod CIDR, using the kernel's routes and neighbours (no tunnel).
static __always_inline int to_remote_node(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	// tot_len stays 0: the helper then checks the packet against the
	// egress MTU itself, and knows that a GSO packet is sent in segments.
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = skb->ingress_ifindex;

	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		// Route and neighbour known: rewrite the MACs ourselves.
		decrease_ttl(ip);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		// Route known, neighbour not yet resolved: let the kernel's
		// neighbour subsystem resolve the next hop (fib.ipv4_dst now holds
		// the gateway) and fill in the MACs.
		struct bpf_redir_neigh nh = {
			.nh_family = AF_INET,
			.ipv4_nh = fib.ipv4_dst,
		};
		decrease_ttl(ip);
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	// No route, TTL expired, fragmentation needed...: the host stack
	// knows how to answer (ICMP errors) or drop.
	return TC_ACT_OK;
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	struct ethhdr *eth;
	struct iphdr *ip;
	struct endpoint *src, *dst;
	struct cidr_key key;

	if (!parse(skb, &eth, &ip))
		return TC_ACT_OK;

	// A pod may only send from its own address, on its own veth.
	src = bpf_map_lookup_elem(&endpoints, &ip->saddr);
	if (!src || src->ifindex != skb->ingress_ifindex)
		return TC_ACT_SHOT;
	count_tx(ip->saddr, skb->len);

	// The kernel answers for expiring packets (ICMP time exceeded).
	if (ip->ttl <= 1)
		return TC_ACT_OK;

	dst = bpf_map_lookup_elem(&endpoints, &ip->daddr);
	if (dst)
		return deliver(skb, eth, ip, dst);

	key.prefixlen = 32;
	key.addr = ip->daddr;
	if (bpf_map_lookup_elem(&remote_cidrs, &key))
		return to_remote_node(skb, eth, ip);

	return TC_ACT_OK;
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	struct ethhdr *eth;
	struct iphdr *ip;

	if (parse(skb, &eth, &ip))
		count_rx(ip->daddr, skb->len);
	return TC_ACT_OK;
}

SEC("tc")
int from_uplink(struct __sk_buff *skb)
{
	struct ethhdr *eth;
	struct iphdr *ip;
	struct endpoint *dst;

	struct cidr_key key;

	if (!parse(skb, &eth, &ip) || ip->ttl <= 1)
		return TC_ACT_OK;

	// Only pod-to-pod traffic takes the fast path, the same both ways:
	// from_pod on the other node sent it past that node's conntrack, and
	// the reply will go back past ours. Anything else for a pod (from a
	// node address, or NATed by kube-proxy) goes through the host stack,
	// so that conntrack sees both directions: a reply whose request it
	// never saw is INVALID, and kube-proxy drops INVALID packets.
	key.prefixlen = 32;
	key.addr = ip->saddr;
	if (!bpf_map_lookup_elem(&remote_cidrs, &key))
		return TC_ACT_OK;

	dst = bpf_map_lookup_elem(&endpoints, &ip->daddr);
	if (dst)
		return deliver(skb, eth, ip, dst);
	return TC_ACT_OK;
}
