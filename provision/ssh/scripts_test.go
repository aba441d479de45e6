package ssh

import (
	"embed"
	"strings"
	"testing"

	"github.com/labctl/lab/internal/scripttest"
)

//go:embed *.sh
var scriptFiles embed.FS

// TestScriptFiles parses the transport's scripts with sh and runs
// shellcheck on them.
func TestScriptFiles(t *testing.T) {
	scripttest.CheckFS(t, scriptFiles)
}

// TestGeneratedScripts checks command lines as the transport builds them.
func TestGeneratedScripts(t *testing.T) {
	scripttest.Check(t, "sftp", script(sftpScript, strings.Fields(sftpServers)))
	scripttest.Check(t, "check", script(checkScript, []string{"/etc/a b", "3", "00ff", "644", "root", "root"}))
}
