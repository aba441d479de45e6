// Package scripttest judges the shell scripts lab runs on nodes before any
// node sees them: the shell they are written for parses each one (sh -n,
// which is dash on Debian, or bash -n), and shellcheck reads it for the
// mistakes a parse cannot see. A script is POSIX sh unless its first line
// names bash (#!/bin/bash, #!/usr/bin/env bash) or it carries the directive
// "# shellcheck shell=bash".
//
// shellcheck is the Debian package of that name; without it the tests
// skip, or fail under LAB_REQUIRE_TOOLS=1 (see tooltest).
package scripttest

import (
	"bytes"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"strings"
	"testing"

	"github.com/labctl/lab/internal/tooltest"
)

// Check parses script with its shell and runs shellcheck on it; name says
// which script failed.
func Check(t *testing.T, name, script string) {
	t.Helper()
	dialect := Dialect(script)
	if out, err := run(dialect, script, "-n"); err != nil {
		t.Errorf("%s: %s -n: %v\n%s", name, dialect, err, out)
	}
	sc := tooltest.Find(t, "shellcheck", "LAB_SHELLCHECK", "apt-get install -y shellcheck")
	if out, err := run(sc, script, "--shell="+dialect, "--external-sources", "-"); err != nil {
		t.Errorf("%s: shellcheck: %v\n%s\n--- script ---\n%s", name, err, out, numbered(script))
	}
}

// CheckFS checks every file whose name ends in .sh in fsys, as Check does.
// It fails when there is none: a pattern that matches nothing checks
// nothing.
func CheckFS(t *testing.T, fsys fs.FS) {
	t.Helper()
	n := 0
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".sh" {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		n++
		Check(t, p, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no .sh files to check")
	}
}

// Dialect is the shell script is written for: "bash" or "sh".
func Dialect(script string) string {
	first, _, _ := strings.Cut(script, "\n")
	switch {
	case first == "#!/bin/bash", strings.HasPrefix(first, "#!/bin/bash "),
		first == "#!/usr/bin/env bash", strings.Contains(script, "# shellcheck shell=bash"):
		return "bash"
	}
	return "sh"
}

func run(prog, stdin string, args ...string) ([]byte, error) {
	cmd := exec.Command(prog, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// numbered prefixes each line of s with its number, as shellcheck counts.
func numbered(s string) string {
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, line)
	}
	return b.String()
}
