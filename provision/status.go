package provision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/phases"
	"github.com/labctl/lab/provision/provider"
)

// NodeStatus is one node in `lab status`.
type NodeStatus struct {
	Name      string   `json:"name"`
	Roles     []string `json:"roles"`
	Address   string   `json:"address"`
	Machine   string   `json:"machine"` // the provider's view: running, stopped, missing, unknown
	Reachable bool     `json:"reachable"`
	Error     string   `json:"error,omitempty"`
	Phases    []string `json:"phases"` // completed phases, in order
	VIP       bool     `json:"vip,omitempty"`
}

// LabStatus is the whole of `lab status`.
type LabStatus struct {
	Lab        string       `json:"lab"`
	Endpoint   string       `json:"endpoint"`
	VIPHolders []string     `json:"vipHolders,omitempty"`
	API        string       `json:"api"` // healthy, or what failed
	Nodes      []NodeStatus `json:"nodes"`
	// Cilium is every Kubernetes node's Cilium agent (cni: cilium), as
	// the first control plane's kubectl sees it; CiliumError says why
	// there is no list.
	Cilium      []phases.CiliumAgent `json:"cilium,omitempty"`
	CiliumError string               `json:"ciliumError,omitempty"`
}

// Status reports each node's reachability and completed phases, who holds
// the VIP, whether the API answers through the endpoint and, with Cilium,
// each agent's readiness and `cilium-dbg status --brief`. It changes
// nothing and does not take the lab's lock (it may run beside lab up).
func Status(ctx context.Context, l *labfile.Lab, o Options) (*LabStatus, error) {
	s, err := openReadOnly(l, o)
	if err != nil {
		return nil, err
	}
	defer s.close()
	st := &LabStatus{Lab: l.Metadata.Name, Endpoint: l.EndpointString()}
	infos, err := s.prov.Nodes(ctx, l)
	if err != nil {
		return nil, err
	}
	machine := map[string]provider.State{}
	for _, in := range infos {
		machine[in.Name] = in.State
		s.nodes[in.Name] = in
	}
	done := map[string][]string{}
	if j, err := s.dir.Journal(); err == nil {
		for _, e := range j {
			done[e.Node] = append(done[e.Node], e.Phase)
		}
	}
	c := phases.NewRun(l, s.dir, s, s.rep)
	st.Nodes = make([]NodeStatus, len(l.Nodes))
	var wg sync.WaitGroup
	for i := range l.Nodes {
		n := &l.Nodes[i]
		ns := &st.Nodes[i]
		*ns = NodeStatus{Name: n.Name, Roles: n.Roles, Address: l.NodeIP(n).String(), Machine: string(machine[n.Name]), Phases: done[n.Name]}
		if ns.Phases == nil {
			ns.Phases = []string{}
		}
		if ns.Machine == "" {
			ns.Machine = string(provider.StateMissing)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			conn, err := c.Conn(cctx, n.Name)
			if err == nil {
				_, err = conn.Run(cctx, "true")
			}
			if err != nil {
				ns.Error = firstLine(err.Error())
				return
			}
			ns.Reachable = true
		}()
	}
	wg.Wait()
	if l.ControlPlane.Mode == labfile.EndpointVIP {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		holders, _ := c.VIPHolders(cctx)
		cancel()
		sort.Strings(holders)
		st.VIPHolders = holders
		for i := range st.Nodes {
			for _, h := range holders {
				if st.Nodes[i].Name == h {
					st.Nodes[i].VIP = true
				}
			}
		}
	}
	st.API = apiHealth(ctx, l, s.dir.Kubeconfig())
	if l.CNI.Type == labfile.CNICilium {
		st.Cilium, st.CiliumError = ciliumAgents(ctx, c, st)
	}
	return st, nil
}

// ciliumStatusTimeout bounds the Cilium part of lab status: one kubectl
// get, and one cilium-dbg status --brief per ready agent.
const ciliumStatusTimeout = 30 * time.Second

// ciliumAgents asks the first control plane about the Cilium agents when
// it is reachable and the API healthy; otherwise it says why not.
func ciliumAgents(ctx context.Context, c *phases.Run, st *LabStatus) ([]phases.CiliumAgent, string) {
	first := st.Nodes[0]
	for _, n := range st.Nodes {
		if slices.Contains(n.Roles, labfile.RoleControlPlane) {
			first = n
			break
		}
	}
	switch {
	case !first.Reachable:
		return nil, "not asked: " + first.Name + " is not reachable"
	case st.API != "healthy":
		return nil, "not asked: the API is not healthy"
	}
	cctx, cancel := context.WithTimeout(ctx, ciliumStatusTimeout)
	defer cancel()
	agents, err := c.CiliumAgents(cctx)
	if err != nil {
		return nil, firstLine(err.Error())
	}
	return agents, ""
}

// apiHealth asks the API server's /healthz through the endpoint, trusting
// the cluster CA from the admin kubeconfig. Without one (before kubeadm
// init), it only says whether the endpoint accepts TCP.
func apiHealth(ctx context.Context, l *labfile.Lab, kubeconfig string) string {
	addr := l.EndpointString()
	ca, err := kubeconfigCA(kubeconfig)
	if err != nil {
		d := net.Dialer{Timeout: 3 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return "unreachable: " + err.Error()
		}
		c.Close()
		return "accepts TCP (no kubeconfig yet to check /healthz)"
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/healthz", nil)
	resp, err := client.Do(req)
	if err != nil {
		return "unhealthy: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("unhealthy: %s %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return "healthy"
}

// kubeconfigCA reads the first cluster's CA from a kubeconfig file.
func kubeconfigCA(path string) ([]byte, error) {
	var kc struct {
		Clusters []struct {
			Cluster struct {
				CA string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(data, &kc); err != nil || len(kc.Clusters) == 0 {
		return nil, fmt.Errorf("%s: no cluster", path)
	}
	return base64.StdEncoding.DecodeString(kc.Clusters[0].Cluster.CA)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
