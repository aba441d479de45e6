//go:build linux

// Package daemon is `lab-node daemon`: it loads the eBPF datapath on a node,
// installs the CNI plugin and its config, keeps the node's routes to other
// nodes' pod CIDRs (and the datapath's remote_cidrs map, and masquerading)
// in sync with the cluster's Node objects, and serves the counters.
//
// The Node objects come through a NodeSource: the API server (with the
// kubeconfig lab writes for the ServiceAccount lab-node) on a real node, or a JSON file in tests and on
// hosts without Kubernetes; everything after the source is the same code.
package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// Node is what the datapath needs to know about a cluster node.
type Node struct {
	Name       string       `json:"name"`
	InternalIP netip.Addr   `json:"internalIP"`
	PodCIDR    netip.Prefix `json:"podCIDR"`
}

// NodeSource delivers the full node list whenever it may have changed,
// until ctx ends.
type NodeSource interface {
	Watch(ctx context.Context, changed func([]Node)) error
}

// FileSource reads the node list from a JSON file (an array of Node),
// re-reading it when it changes. A missing file is an empty list.
type FileSource struct {
	Path string
	// Poll is how often the file is checked; default 500ms.
	Poll time.Duration
}

// Watch implements NodeSource.
func (f FileSource) Watch(ctx context.Context, changed func([]Node)) error {
	poll := f.Poll
	if poll == 0 {
		poll = 500 * time.Millisecond
	}
	var last []byte
	first := true
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(f.Path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("node list %s: %w", f.Path, err)
		}
		if first || !bytes.Equal(b, last) {
			var nodes []Node
			if len(b) > 0 {
				if err := json.Unmarshal(b, &nodes); err != nil {
					return fmt.Errorf("node list %s: %w", f.Path, err)
				}
			}
			changed(nodes)
			last, first = b, false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// APISource watches Node objects through the API server.
type APISource struct {
	// Kubeconfig may read, list and watch Node objects: on a lab node,
	// /etc/lab/lab-node.conf with lab-node's ServiceAccount token.
	Kubeconfig string
	Log        *slog.Logger
}

// Watch implements NodeSource with a shared informer: every add, update or
// delete of a Node re-sends the whole list (a handful of nodes in a lab).
func (a APISource) Watch(ctx context.Context, changed func([]Node)) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", a.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", a.Kubeconfig, err)
	}
	cfg.UserAgent = "lab-node"
	// A REST client that knows only core/v1: the typed clientset would
	// register every API group and add ~10 MB to a binary that every node
	// downloads.
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	client, err := rest.RESTClientFor(cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", a.Kubeconfig, err)
	}
	params := runtime.NewParameterCodec(scheme)
	informer := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			var list corev1.NodeList
			err := client.Get().Resource("nodes").VersionedParams(&o, params).Do(ctx).Into(&list)
			return &list, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.Watch = true
			return client.Get().Resource("nodes").VersionedParams(&o, params).Watch(ctx)
		},
	}, &corev1.Node{}, 10*time.Minute, cache.Indexers{})
	kick := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(_, n any) { poke(n) },
		DeleteFunc: poke,
	}); err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	go informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return ctx.Err()
	}
	for {
		list := informer.GetStore().List()
		out := make([]Node, 0, len(list))
		for _, obj := range list {
			n, ok := obj.(*corev1.Node)
			if !ok {
				continue
			}
			node, err := FromAPI(n)
			if err != nil {
				a.Log.Debug("node not ready for routing yet", "node", n.Name, "err", err)
			}
			out = append(out, node)
		}
		changed(out)
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		}
	}
}

// FromAPI converts a Node object. Fields the node does not have yet (no
// podCIDR before the controller manager assigns one) stay zero, and the
// error says which.
func FromAPI(n *corev1.Node) (Node, error) {
	out := Node{Name: n.Name}
	var missing []string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() && !out.InternalIP.IsValid() {
				out.InternalIP = ip
			}
		}
	}
	if !out.InternalIP.IsValid() {
		missing = append(missing, "an IPv4 InternalIP")
	}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
			out.PodCIDR = p.Masked()
			break
		}
	}
	if !out.PodCIDR.IsValid() {
		missing = append(missing, "an IPv4 podCIDR")
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("node %s has no %s", n.Name, strings.Join(missing, " and no "))
	}
	return out, nil
}

// RemoteCIDRs is the routing table the node should have: every other
// node's pod CIDR through that node's InternalIP. Nodes without both are
// skipped until they have them.
func RemoteCIDRs(self string, nodes []Node) map[netip.Prefix]netip.Addr {
	out := make(map[netip.Prefix]netip.Addr)
	for _, n := range nodes {
		if n.Name == self || !n.PodCIDR.IsValid() || !n.InternalIP.IsValid() {
			continue
		}
		out[n.PodCIDR] = n.InternalIP
	}
	return out
}

// findSelf returns this node from the list, if it is ready for routing.
func findSelf(self string, nodes []Node) (Node, bool) {
	i := slices.IndexFunc(nodes, func(n Node) bool { return n.Name == self })
	if i < 0 || !nodes[i].PodCIDR.IsValid() || !nodes[i].InternalIP.IsValid() {
		return Node{}, false
	}
	return nodes[i], true
}
