//go:build linux

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/labctl/lab/bpf"
	"github.com/labctl/lab/cmd/lab-node/internal/cniplugin"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config is what `lab-node daemon` is told by its flags.
type Config struct {
	NodeName   string
	Nodes      NodeSource
	Uplink     string // interface name; empty: the one holding the node's InternalIP
	BPFRoot    string
	AttachMode bpf.AttachMode
	CNIConfDir string
	CNIBinDir  string
	StateDir   string // IPAM state
	MTU        int    // pod veth MTU; 0: the uplink's
	// MetricsAddr serves /metrics, e.g. 127.0.0.1:9965; empty: off.
	MetricsAddr string
	Masquerade  bool
	Log         *slog.Logger
}

// Run brings the node's pod network up and keeps it in sync until ctx ends.
// The pinned datapath, routes and config stay when it returns, so pods keep
// their network while lab-node restarts or upgrades.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Log
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		self      Node
		dp        *bpf.Datapath
		lastWant  map[netip.Prefix]netip.Addr
		lastError string
	)
	defer func() {
		if dp != nil {
			dp.Close()
		}
	}()

	// sync runs on every change of the node list; the first time this
	// node has its podCIDR it sets the node up.
	sync := func(nodes []Node) {
		if dp == nil {
			s, ok := findSelf(cfg.NodeName, nodes)
			if !ok {
				log.Info("waiting for this node's InternalIP and podCIDR", "node", cfg.NodeName)
				return
			}
			var err error
			if dp, err = setUp(ctx, cfg, s); err != nil {
				cancel(err)
				return
			}
			self = s
			log.Info("pod network up", "node", s.Name, "podCIDR", s.PodCIDR, "uplinkIP", s.InternalIP)
		}
		want := RemoteCIDRs(cfg.NodeName, nodes)
		err := errors.Join(
			SyncRoutes(want),
			dp.SetRemoteCIDRs(want),
			masquerade(ctx, cfg, self, want),
		)
		if err != nil {
			// Keep running: the next change (or resync) retries.
			if err.Error() != lastError {
				log.Error("sync routes", "err", err)
			}
			lastError = err.Error()
			return
		}
		lastError = ""
		if !mapsEqual(want, lastWant) {
			log.Info("routes in sync", "remotePodCIDRs", len(want))
		}
		lastWant = want
	}

	err := cfg.Nodes.Watch(ctx, sync)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

func mapsEqual(a, b map[netip.Prefix]netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func masquerade(ctx context.Context, cfg Config, self Node, remote map[netip.Prefix]netip.Addr) error {
	if !cfg.Masquerade {
		return nil
	}
	cidrs := []netip.Prefix{self.PodCIDR}
	for p := range remote {
		cidrs = append(cidrs, p)
	}
	return SyncMasquerade(ctx, self.PodCIDR, cidrs)
}

// setUp loads and pins the datapath, hooks the uplink, serves metrics,
// installs the plugin and, last, writes the CNI config.
func setUp(ctx context.Context, cfg Config, self Node) (*bpf.Datapath, error) {
	if err := ensureBPFFS(cfg.BPFRoot); err != nil {
		return nil, err
	}
	uplink, err := findUplink(cfg.Uplink, self.InternalIP)
	if err != nil {
		return nil, err
	}
	for _, sysctl := range []string{"/proc/sys/net/ipv4/ip_forward"} {
		if err := os.WriteFile(sysctl, []byte("1"), 0o644); err != nil {
			return nil, fmt.Errorf("enable forwarding: %w", err)
		}
	}
	dp, err := bpf.Load(cfg.BPFRoot, cfg.AttachMode)
	if err != nil {
		return nil, err
	}
	if err := dp.AttachUplink(bpf.Interface{Name: uplink.Attrs().Name, Index: uplink.Attrs().Index}); err != nil {
		dp.Close()
		return nil, fmt.Errorf("uplink %s: %w", uplink.Attrs().Name, err)
	}
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			dp.Close()
			return nil, fmt.Errorf("metrics: %w", err)
		}
		srv := &http.Server{Handler: MetricsHandler(dp, cfg.StateDir), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		context.AfterFunc(ctx, func() { srv.Close() })
	}
	if _, err := InstallPlugin(cfg.CNIBinDir); err != nil {
		dp.Close()
		return nil, err
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = uplink.Attrs().MTU
	}
	path, err := WriteCNIConfig(cfg.CNIConfDir, cniplugin.Settings{
		PodCIDR:    self.PodCIDR.String(),
		MTU:        mtu,
		BPFRoot:    cfg.BPFRoot,
		StateDir:   cfg.StateDir,
		AttachMode: string(cfg.AttachMode),
	})
	if err != nil {
		dp.Close()
		return nil, err
	}
	cfg.Log.Info("CNI config written", "path", path, "uplink", uplink.Attrs().Name)
	return dp, nil
}

// findUplink returns the named interface, or the one that holds ip.
func findUplink(name string, ip netip.Addr) (netlink.Link, error) {
	if name != "" {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("uplink %s: %w", name, err)
		}
		return l, nil
	}
	addrs, err := netlink.AddrList(nil, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("find uplink: %w", err)
	}
	i := slices.IndexFunc(addrs, func(a netlink.Addr) bool { return a.IP.Equal(ip.AsSlice()) })
	if i < 0 {
		return nil, fmt.Errorf("find uplink: no interface has the node's InternalIP %s (set --uplink)", ip)
	}
	l, err := netlink.LinkByIndex(addrs[i].LinkIndex)
	if err != nil {
		return nil, fmt.Errorf("find uplink: %w", err)
	}
	return l, nil
}

// ensureBPFFS mounts bpffs on /sys/fs/bpf when root is below it and
// nothing is mounted there (nodes without systemd do not mount it).
func ensureBPFFS(root string) error {
	var st unix.Statfs_t
	dir := root
	for {
		if err := unix.Statfs(dir, &st); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("bpffs: %s does not exist", root)
		}
		dir = parent
	}
	if st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	const sysBPF = "/sys/fs/bpf"
	if rel, err := filepath.Rel(sysBPF, root); err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("bpffs: %s is not on a bpf filesystem", root)
	}
	if err := unix.Mount("bpffs", sysBPF, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on %s: %w", sysBPF, err)
	}
	return nil
}
