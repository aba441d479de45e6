package ssh

import (
	"sort"
	"strings"
	"sync"
)

// Mask replaces secrets in output and errors.
const Mask = "***"

// Secrets is the set of strings (tokens, certificate keys, passwords) that
// must never appear in logs or errors. A Transport masks them in every
// output line and every error it returns. It is safe for concurrent use.
type Secrets struct {
	mu   sync.RWMutex
	list []string // longest first, so that a secret containing another is masked whole
	repl *strings.Replacer
}

// Add registers secrets. A secret that spans lines is also registered line
// by line, because output is masked one line at a time.
func (s *Secrets) Add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, x := range s.list {
		seen[x] = true
	}
	add := func(x string) {
		if x != "" && !seen[x] {
			seen[x] = true
			s.list = append(s.list, x)
		}
	}
	for _, x := range secrets {
		add(x)
		if strings.ContainsAny(x, "\r\n") {
			for _, line := range strings.FieldsFunc(x, func(r rune) bool { return r == '\n' || r == '\r' }) {
				add(strings.TrimSpace(line))
			}
		}
	}
	sort.SliceStable(s.list, func(i, j int) bool { return len(s.list[i]) > len(s.list[j]) })
	pairs := make([]string, 0, 2*len(s.list))
	for _, x := range s.list {
		pairs = append(pairs, x, Mask)
	}
	s.repl = strings.NewReplacer(pairs...)
}

// Mask returns text with every registered secret replaced by Mask.
func (s *Secrets) Mask(text string) string {
	if s == nil {
		return text
	}
	s.mu.RLock()
	r := s.repl
	s.mu.RUnlock()
	if r == nil {
		return text
	}
	return r.Replace(text)
}

// maskedError is an error whose message has secrets masked. It still
// unwraps to the original so that errors.Is and errors.As work.
type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// MaskError returns err with secrets masked in its message.
func (s *Secrets) MaskError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if m := s.Mask(msg); m != msg {
		return &maskedError{msg: m, err: err}
	}
	return err
}
