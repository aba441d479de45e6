//go:build linux

package daemon

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/labctl/lab/bpf"
	"github.com/labctl/lab/cmd/lab-node/internal/ipam"
)

// PodStats is one endpoint's row in `lab-node stats` and /metrics.
type PodStats struct {
	IP      netip.Addr `json:"ip"`
	Pod     string     `json:"pod,omitempty"`
	Ifindex int        `json:"ifindex"`
	bpf.Counters
}

// ReadStats joins the datapath's endpoints and counters with the pod names
// the IPAM records hold; sorted by address.
func ReadStats(dp *bpf.Datapath, ipamDir string) ([]PodStats, error) {
	eps, err := dp.Endpoints()
	if err != nil {
		return nil, err
	}
	counters, err := dp.Counters()
	if err != nil {
		return nil, err
	}
	owners, _ := ipam.Owners(ipamDir) // names are a nicety
	out := make([]PodStats, 0, len(eps))
	for ip, ep := range eps {
		out = append(out, PodStats{IP: ip, Pod: owners[ip].Pod, Ifindex: ep.Ifindex, Counters: counters[ip]})
	}
	slices.SortFunc(out, func(a, b PodStats) int { return a.IP.Compare(b.IP) })
	return out, nil
}

// WriteMetrics writes the stats in the Prometheus text exposition format.
func WriteMetrics(w io.Writer, stats []PodStats) error {
	type metric struct {
		name, help string
		value      func(PodStats) uint64
	}
	metrics := []metric{
		{"lab_node_pod_rx_packets_total", "Packets delivered to the pod.", func(s PodStats) uint64 { return s.RxPackets }},
		{"lab_node_pod_rx_bytes_total", "Bytes delivered to the pod.", func(s PodStats) uint64 { return s.RxBytes }},
		{"lab_node_pod_tx_packets_total", "Packets sent by the pod.", func(s PodStats) uint64 { return s.TxPackets }},
		{"lab_node_pod_tx_bytes_total", "Bytes sent by the pod.", func(s PodStats) uint64 { return s.TxBytes }},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP lab_node_endpoints Pods on this node known to the eBPF datapath.\n# TYPE lab_node_endpoints gauge\nlab_node_endpoints %d\n", len(stats))
	for _, m := range metrics {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", m.name, m.help, m.name)
		for _, s := range stats {
			fmt.Fprintf(&b, "%s{ip=%q,pod=%q} %d\n", m.name, s.IP.String(), s.Pod, m.value(s))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// MetricsHandler serves /metrics from the live maps.
func MetricsHandler(dp *bpf.Datapath, ipamDir string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		stats, err := ReadStats(dp, ipamDir)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		WriteMetrics(w, stats)
	})
	return mux
}
