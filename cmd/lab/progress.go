package main

import (
	"os"

	"github.com/labctl/lab/provision/workflow"
	"golang.org/x/term"
)

// reporter picks the progress view: JSON lines for --output json, a live
// view on a terminal, timestamped lines otherwise. The returned func stops
// the live view.
func reporter(s *settings) (workflow.Reporter, func()) {
	if s.Output == "json" {
		return workflow.NewJSON(os.Stdout), func() {}
	}
	if fd := int(os.Stderr.Fd()); term.IsTerminal(fd) && !s.Verbose {
		w, _, err := term.GetSize(fd)
		if err != nil {
			w = 80
		}
		l := workflow.NewLive(os.Stderr, w)
		return l, l.Close
	}
	return workflow.NewPlain(os.Stderr, s.Verbose), func() {}
}
