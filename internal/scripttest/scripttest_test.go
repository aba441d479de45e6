package scripttest

import (
	"testing"

	"github.com/labctl/lab/internal/tooltest"
)

func TestDialect(t *testing.T) {
	for script, want := range map[string]string{
		"set -eu\necho hi\n":                       "sh",
		"#!/bin/sh\necho hi\n":                     "sh",
		"#!/bin/bash\necho hi\n":                   "bash",
		"#!/usr/bin/env bash\necho hi\n":           "bash",
		"# shellcheck shell=bash\necho ${x/a/b}\n": "bash",
	} {
		if got := Dialect(script); got != want {
			t.Errorf("Dialect(%q) = %s, want %s", script, got, want)
		}
	}
}

// TestJudges makes sure the judges speak up: a script sh cannot parse and
// one shellcheck objects to both fail.
func TestJudges(t *testing.T) {
	if out, err := run("sh", "if true; then\n", "-n"); err == nil {
		t.Errorf("sh -n accepts an unfinished if\n%s", out)
	}
	sc := tooltest.Find(t, "shellcheck", "LAB_SHELLCHECK", "apt-get install -y shellcheck")
	if out, err := run(sc, "rm -rf $1/\n", "--shell=sh", "-"); err == nil {
		t.Errorf("shellcheck accepts an unquoted expansion\n%s", out)
	}
	Check(t, "clean", "set -- a b\nfor a in \"$@\"; do echo \"$a\"; done\n")
}
