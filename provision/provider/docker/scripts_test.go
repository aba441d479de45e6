package docker

import (
	"embed"
	"testing"

	"github.com/labctl/lab/internal/scripttest"
)

//go:embed *.sh
var scriptFiles embed.FS

// TestScriptFiles parses the provider's scripts with sh and runs
// shellcheck on them.
func TestScriptFiles(t *testing.T) {
	scripttest.CheckFS(t, scriptFiles)
}
