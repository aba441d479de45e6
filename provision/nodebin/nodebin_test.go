package nodebin

import (
	"bytes"
	"errors"
	"testing"
)

// TestLabNode checks what the build embedded: with make build both
// architectures are ELF binaries; with a plain go build, none is there and
// the error says so.
func TestLabNode(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		data, err := LabNode(arch)
		if errors.Is(err, ErrNotEmbedded) {
			t.Logf("%s: not embedded (plain go build)", arch)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte("\x7fELF")) {
			t.Errorf("%s: embedded lab-node is not an ELF binary", arch)
		}
	}
	if _, err := LabNode("riscv64"); !errors.Is(err, ErrNotEmbedded) {
		t.Errorf("unknown architecture: %v", err)
	}
}
