//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/labctl/lab/cmd/lab-node/internal/cniplugin"
	"github.com/labctl/lab/cmd/lab-node/internal/daemon"
)

// The CNI project's own runtime library drives the plugin through the
// config file the daemon wrote, as containerd does: VERSION to validate the
// list, ADD, CHECK with the cached result, DEL.
func TestLibcniDrivesThePlugin(t *testing.T) {
	a, b := twoNodes(t, "auto")
	b1 := addPod(t, b, "b1")

	// libcni runs plugins from CNI_PATH in its own network namespace; the
	// emulated node is a netns, so CNI_PATH holds a two-line wrapper.
	binDir := t.TempDir()
	wrapper := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", a.ns, filepath.Join(a.binDir, cniplugin.PluginType))
	if err := os.WriteFile(filepath.Join(binDir, cniplugin.PluginType), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromFile(filepath.Join(a.confDir, daemon.ConfFile))
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil)
	ctx := t.Context()
	if _, err := cni.ValidateNetworkList(ctx, list); err != nil {
		t.Fatalf("ValidateNetworkList: %v", err)
	}

	p := newPod(t, a, "l1")
	rt := &libcni.RuntimeConf{
		ContainerID: p.id,
		NetNS:       "/run/netns/" + p.ns,
		IfName:      "eth0",
		Args:        [][2]string{{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "l1"}},
	}
	res, err := cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { cni.DelNetworkList(ctx, list, rt) })
	r, err := types100.NewResultFromResult(res)
	if err != nil || len(r.IPs) != 1 {
		t.Fatalf("ADD result %v: %v", res, err)
	}
	ip, _ := netip.AddrFromSlice(r.IPs[0].Address.IP.To4())
	if !a.podCIDR.Contains(ip) {
		t.Fatalf("address %s not in %s", ip, a.podCIDR)
	}
	p.ip = ip
	ping(t, p, b1.ip)
	if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	if err := cni.DelNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	assertGone(t, a, p, cniplugin.HostVethName(p.id, "eth0"))
}
