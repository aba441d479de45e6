package phases

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"strings"
)

// The scripts lab runs on nodes live beside this file as .sh files, so
// that the tests can hand each one to sh -n and shellcheck as it is. They
// are POSIX sh (dash on Debian) and take their parameters as positional
// arguments (see script), never as text formatted into them.
var (
	//go:embed addon.sh
	addonSh string
	//go:embed addon_status.sh
	addonStatusSh string
	//go:embed apt_install.sh
	aptInstallSh string
	//go:embed audit.sh
	auditSh string
	//go:embed audit_cilium.sh
	auditCiliumSh string
	//go:embed cilium.sh
	ciliumSh string
	//go:embed cilium_agents.sh
	ciliumAgentsSh string
	//go:embed cilium_status.sh
	ciliumStatusSh string
	//go:embed facts.sh
	factsScript string
	//go:embed file_sums.sh
	fileSumsSh string
	//go:embed fresh.sh
	freshSh string
	//go:embed images.sh
	imagesSh string
	//go:embed import_images.sh
	importImagesSh string
	//go:embed install_lb.sh
	installLBSh string
	//go:embed ipv4_addrs.sh
	ipv4AddrsSh string
	//go:embed kubeadm_reset_stale.sh
	kubeadmResetStaleSh string
	//go:embed kubernetes.sh
	kubernetesSh string
	//go:embed missing.sh
	missingSh string
	//go:embed node_mounts.sh
	nodeMountsSh string
	//go:embed prepare.sh
	prepareSh string
	//go:embed reset.sh
	resetSh string
	//go:embed reset_cilium.sh
	resetCiliumSh string
	//go:embed restart_containerd.sh
	restartContainerdSh string
	//go:embed start_lab_node.sh
	startLabNodeSh string
	//go:embed stamp.sh
	stampSh string
	//go:embed sums.sh
	sumsSh string
	//go:embed token.sh
	tokenSh string
	//go:embed versions.sh
	versionsSh string
)

// script is the command that runs body, one of the embedded scripts, with
// args as its positional parameters: a `set --` line with each argument
// quoted goes ahead of the script's text, which stays as the file has it.
func script(body string, args ...string) string {
	if len(args) == 0 {
		return body
	}
	return "set -- " + strings.Join(quoteAll(args), " ") + "\n" + body
}

// shq quotes s for a POSIX shell.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// sedRegex escapes s for use as a literal in a sed /regex/.
func sedRegex(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `/`, `\/`, `.`, `\.`, `*`, `\*`, `[`, `\[`, `]`, `\]`, `^`, `\^`, `$`, `\$`)
	return r.Replace(s)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// freshCall is the command that calls fresh (fresh.sh) for unit and files:
// it succeeds when unit is active and was started no earlier than each
// file was last written, that is, the service runs the configuration on
// disk. A lab up killed between installing a file and restarting its
// service leaves the file in place and the service stale; this is how the
// next run notices. (Timestamps have one-second resolution.) A script that
// uses it starts with freshSh.
func freshCall(unit string, files ...string) string {
	return "fresh " + strings.Join(quoteAll(append([]string{unit}, files...)), " ")
}

// freshCheck is a command that succeeds when every one of calls (each a
// freshCall) does.
func freshCheck(calls ...string) string {
	return freshSh + strings.Join(calls, " && ")
}
