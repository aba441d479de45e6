package phases

import (
	"embed"
	"net/netip"
	"testing"

	"github.com/labctl/lab/internal/scripttest"
	"github.com/labctl/lab/templates"
)

//go:embed *.sh
var scriptFiles embed.FS

// TestScriptFiles parses every script file with sh and runs shellcheck on
// it, as the nodes' /bin/sh (dash on Debian) will get it.
func TestScriptFiles(t *testing.T) {
	scripttest.Check(t, "fresh.sh", freshSh) // a function only: checked alone too
	scripttest.CheckFS(t, scriptFiles)
}

// TestGeneratedScripts checks the commands lab puts together from the
// script files and its arguments, as the nodes get them.
func TestGeneratedScripts(t *testing.T) {
	c, _ := newTestRun(t)
	vip := netip.MustParseAddr("10.9.0.10")
	bins := []LocalFile{{Dst: "/usr/bin/kubeadm"}, {Dst: "/usr/bin/kubelet"}}
	sums := []string{"00ff", "ff00"}
	rbac, err := c.rbacFile()
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"kubernetes":                 kubernetesScript("v1.34.12"),
		"install-lb":                 installLBScript(),
		"prepare with swap":          prepareScript(c.Lab, "cp1", &Facts{Swap: []string{"/swap.img"}}),
		"prepare":                    prepareScript(c.Lab, "cp1", &Facts{}),
		"reset":                      resetScript(vip, "unix:///run/containerd/containerd.sock", "10.244.0.0/16"),
		"reset without VIP":          resetScript(netip.Addr{}, "unix:///run/containerd/containerd.sock", "10.244.0.0/16"),
		"audit":                      auditScript(vip, "10.244.0.0/16"),
		"audit without VIP":          auditScript(netip.Addr{}, "10.244.0.0/16"),
		"sums":                       sumScript(programStamp, []string{"/usr/bin/kubeadm", templates.KubeletUnitPath}) + "\nsystemctl is-enabled kubelet 2>/dev/null; true",
		"stamp":                      stampScript("systemctl daemon-reload && systemctl enable --quiet kubelet", programStamp, bins, sums),
		"stamp alone":                stampScript("", programStamp, bins, sums),
		"fresh":                      freshCheck(freshCall("haproxy", templates.HAProxyConfigPath), freshCall("keepalived", templates.KeepalivedConfigPath)),
		"restart containerd":         restartContainerdScript(true),
		"cilium":                     ciliumScript(ciliumChartPath("1.18.3")),
		"kubectl diff lab-node RBAC": rbacDiff(rbac),
		"token":                      script(tokenSh, "abcdef", "abcdef.0123456789abcdef", "2h0m0s"),
	} {
		scripttest.Check(t, name, s)
	}
}
