// Package preflight tells whether a node's kernel can run the chosen pod
// network: `lab-node preflight` probes the kernel (probe_linux.go) and
// prints a Report as JSON; lab, on any OS, parses it and shows a table.
package preflight

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Datapaths a report can be made for (the lab file's cni.type).
const (
	Builtin = "builtin"
	Cilium  = "cilium"
)

// Check is one probed capability.
type Check struct {
	Name string `json:"name"`
	// OK is whether the kernel has it.
	OK bool `json:"ok"`
	// Required: the datapath cannot run without it (otherwise it is only
	// used when present, e.g. TCX over clsact).
	Required bool   `json:"required"`
	Detail   string `json:"detail,omitempty"`
}

// Report is the JSON `lab-node preflight` prints.
type Report struct {
	Node          string  `json:"node"`
	Kernel        string  `json:"kernel"`
	Arch          string  `json:"arch"`
	Datapath      string  `json:"datapath"`
	CiliumVersion string  `json:"ciliumVersion,omitempty"`
	Checks        []Check `json:"checks"`
	// OK is true when every required check passed.
	OK bool `json:"ok"`
}

// Missing lists the required checks that failed.
func (r Report) Missing() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Required && !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// Parse reads a report as printed by `lab-node preflight`.
func Parse(b []byte) (Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return Report{}, fmt.Errorf("preflight report: %w", err)
	}
	if r.Datapath == "" || len(r.Checks) == 0 {
		return Report{}, fmt.Errorf("preflight report: no datapath or checks in %q", b)
	}
	return r, nil
}

// WriteTable prints one row per check of every report, missing required
// ones marked, so a user sees at once which node lacks what.
func WriteTable(w io.Writer, reports []Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tKERNEL\tCHECK\tRESULT\tDETAIL")
	for _, r := range reports {
		for _, c := range r.Checks {
			result := "ok"
			switch {
			case !c.OK && c.Required:
				result = "MISSING"
			case !c.OK:
				result = "absent (optional)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Node, r.Kernel, c.Name, result, c.Detail)
		}
	}
	return tw.Flush()
}

// KernelVersion is major.minor.patch of a kernel release string.
type KernelVersion [3]int

// ParseKernelVersion reads "6.18.44-fc-v769" or "5.10.0-28-amd64".
func ParseKernelVersion(release string) (KernelVersion, error) {
	var v KernelVersion
	num := release
	if i := strings.IndexFunc(release, func(r rune) bool { return r != '.' && (r < '0' || r > '9') }); i >= 0 {
		num = release[:i]
	}
	parts := strings.Split(strings.Trim(num, "."), ".")
	if len(parts) < 2 {
		return v, fmt.Errorf("kernel release %q: want major.minor[.patch]", release)
	}
	for i := 0; i < len(parts) && i < 3; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return v, fmt.Errorf("kernel release %q: %w", release, err)
		}
		v[i] = n
	}
	return v, nil
}

// Less compares versions.
func (v KernelVersion) Less(o KernelVersion) bool {
	for i := range v {
		if v[i] != o[i] {
			return v[i] < o[i]
		}
	}
	return false
}

func (v KernelVersion) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

// BuiltinMinKernel is what lab's own datapath needs: bpf_redirect_neigh and
// bpf_redirect_peer arrived in 5.10.
var BuiltinMinKernel = KernelVersion{5, 10, 0}

// CiliumMinKernel is the minimum kernel of a Cilium version, from Cilium's
// system requirements: 4.19.57 up to 1.15, 5.4 for 1.16 and 1.17, 5.10
// from 1.18 on.
func CiliumMinKernel(version string) (KernelVersion, error) {
	v := strings.TrimPrefix(version, "v")
	major, rest, _ := strings.Cut(v, ".")
	minorStr, _, _ := strings.Cut(rest, ".")
	maj, err1 := strconv.Atoi(major)
	minor, err2 := strconv.Atoi(minorStr)
	if err1 != nil || err2 != nil || maj != 1 {
		return KernelVersion{}, fmt.Errorf("cilium version %q: want 1.MINOR[.PATCH]", version)
	}
	switch {
	case minor >= 18:
		return KernelVersion{5, 10, 0}, nil
	case minor >= 16:
		return KernelVersion{5, 4, 0}, nil
	case minor >= 14:
		return KernelVersion{4, 19, 57}, nil
	default:
		return KernelVersion{4, 9, 17}, nil
	}
}
