//go:build linux

package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func apiNode(name, ip, cidr, rv string) corev1.Node {
	n := corev1.Node{
		TypeMeta:   metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: rv},
		Spec:       corev1.NodeSpec{PodCIDR: cidr},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}},
	}
	if cidr != "" {
		n.Spec.PodCIDRs = []string{cidr}
	}
	return n
}

// APISource against a fake API server speaking the real list and watch
// protocol: the client-go code path the daemon runs on a node.
func TestAPISourceListsAndWatches(t *testing.T) {
	events := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") != "true" {
			json.NewEncoder(w).Encode(corev1.NodeList{
				TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"},
				ListMeta: metav1.ListMeta{ResourceVersion: "1"},
				Items:    []corev1.Node{apiNode("a", "10.99.0.1", "10.244.1.0/24", "1")},
			})
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case e := <-events:
				fmt.Fprintln(w, e)
				w.(http.Flusher).Flush()
			}
		}
	}))
	defer srv.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubelet.conf")
	os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: %q}}]
users: [{name: node, user: {token: not-a-secret}}]
contexts: [{name: lab, context: {cluster: lab, user: node}}]
current-context: lab
`, srv.URL)), 0o600)

	got := make(chan []Node, 10)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	src := APISource{Kubeconfig: kubeconfig, Log: slog.New(slog.DiscardHandler)}
	go func() { done <- src.Watch(ctx, func(n []Node) { got <- n }) }()

	next := func(want ...Node) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case n := <-got:
				slices.SortFunc(n, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
				if slices.Equal(n, want) {
					return
				}
			case err := <-done:
				t.Fatalf("Watch ended: %v", err)
			case <-deadline:
				t.Fatalf("never saw %+v", want)
			}
		}
	}
	next(nodeA)
	event := func(typ string, n corev1.Node) {
		b, _ := json.Marshal(map[string]any{"type": typ, "object": n})
		events <- string(b)
	}
	event("ADDED", apiNode("b", "10.99.0.2", "", "2"))
	next(nodeA, Node{Name: "b", InternalIP: netip.MustParseAddr("10.99.0.2")})
	event("MODIFIED", apiNode("b", "10.99.0.2", "10.244.2.0/24", "3"))
	next(nodeA, nodeB)
	event("DELETED", apiNode("a", "10.99.0.1", "10.244.1.0/24", "4"))
	next(nodeB)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
