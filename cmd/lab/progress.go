package main

import (
	"os"

	"github.com/labctl/lab/provision/phase"
	"golang.org/x/term"
)

// reporter picks the progress view: JSON lines for --output json, a live
// view on a terminal, timestamped lines otherwise. The returned func stops
// the live view.
func reporter(s *settings) (phase.Reporter, func()) {
	if s.Output == "json" {
		return phase.NewJSON(os.Stdout), func() {}
	}
	if fd := int(os.Stderr.Fd()); term.IsTerminal(fd) && !s.Verbose {
		w, _, err := term.GetSize(fd)
		if err != nil {
			w = 80
		}
		l := phase.NewLive(os.Stderr, w)
		return l, l.Close
	}
	return phase.NewPlain(os.Stderr, s.Verbose), func() {}
}
