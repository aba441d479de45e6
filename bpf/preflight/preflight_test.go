package preflight

import (
	"strings"
	"testing"
)

func TestParseKernelVersion(t *testing.T) {
	for release, want := range map[string]KernelVersion{
		"6.18.44-fc-v769":  {6, 18, 44},
		"5.10.0-28-amd64":  {5, 10, 0},
		"4.19":             {4, 19, 0},
		"6.1.0+":           {6, 1, 0},
		"5.4.0-1103-azure": {5, 4, 0},
	} {
		got, err := ParseKernelVersion(release)
		if err != nil || got != want {
			t.Errorf("ParseKernelVersion(%q) = %v, %v; want %v", release, got, err, want)
		}
	}
	if _, err := ParseKernelVersion("linux"); err == nil {
		t.Error("accepted a release without a version")
	}
	if !(KernelVersion{5, 4, 0}).Less(KernelVersion{5, 10, 0}) || (KernelVersion{5, 10, 0}).Less(KernelVersion{5, 4, 0}) {
		t.Error("Less compares numbers, not strings")
	}
}

func TestCiliumMinKernel(t *testing.T) {
	for version, want := range map[string]KernelVersion{
		"1.18.4": {5, 10, 0}, "v1.17.0": {5, 4, 0}, "1.16": {5, 4, 0}, "1.15.9": {4, 19, 57}, "1.12.0": {4, 9, 17},
	} {
		if got, err := CiliumMinKernel(version); err != nil || got != want {
			t.Errorf("CiliumMinKernel(%q) = %v, %v; want %v", version, got, err, want)
		}
	}
	if _, err := CiliumMinKernel("latest"); err == nil {
		t.Error("accepted a version that is not 1.x")
	}
}

func TestParseAndTable(t *testing.T) {
	r, err := Parse([]byte(`{"node":"cp1","kernel":"4.19.0","datapath":"builtin","ok":false,"checks":[
		{"name":"kernel version >= 5.10.0","ok":false,"required":true,"detail":"too old"},
		{"name":"tcx (otherwise clsact)","ok":false,"required":false}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := r.Missing(); len(m) != 1 || m[0].Detail != "too old" {
		t.Fatalf("Missing = %+v", m)
	}
	var b strings.Builder
	if err := WriteTable(&b, []Report{r}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "MISSING") || !strings.Contains(b.String(), "absent (optional)") {
		t.Fatalf("table:\n%s", b.String())
	}
	if _, err := Parse([]byte(`{}`)); err == nil {
		t.Error("Parse accepted an empty report")
	}
}
