package ssh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/labctl/lab/internal/atomicfile"
	"github.com/labctl/lab/internal/filelock"
)

// ErrHostKeyChanged is matched (errors.Is) by the error for a node whose
// host key differs from the one recorded or pinned for it.
var ErrHostKeyChanged = errors.New("host key changed")

// ErrHostKeyUnknown is matched by the error for a node whose key is not
// known under the Strict policy.
var ErrHostKeyUnknown = errors.New("host key unknown")

// HostKeyError says which key a node offered and what was expected. It is
// permanent: retrying cannot help.
type HostKeyError struct {
	Node    string
	Addr    string
	Offered ssh.PublicKey
	// Known are the recorded (or pinned) keys the offered one was compared
	// with; empty when the node was not known at all.
	Known []knownhosts.KnownKey
	File  string // the lab's known_hosts file
	kind  error
}

func (e *HostKeyError) Is(target error) bool { return target == e.kind }

func (e *HostKeyError) Error() string {
	var b strings.Builder
	offered := ssh.FingerprintSHA256(e.Offered)
	if e.kind == ErrHostKeyUnknown {
		fmt.Fprintf(&b, "%s: host key of %s is not in %s (policy strict): it offered %s %s; "+
			"use the policy accept-new to trust it on first use, or add the key to that file",
			e.Node, e.Addr, e.File, e.Offered.Type(), offered)
		return b.String()
	}
	fmt.Fprintf(&b, "%s: HOST KEY CHANGED for %s: it offered %s %s but ", e.Node, e.Addr, e.Offered.Type(), offered)
	var lines []string
	for i, k := range e.Known {
		if i > 0 {
			b.WriteString(", ")
		}
		if k.Filename == "" {
			fmt.Fprintf(&b, "the provider pinned %s %s", k.Key.Type(), ssh.FingerprintSHA256(k.Key))
			continue
		}
		fmt.Fprintf(&b, "%s:%d has %s %s", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key))
		lines = append(lines, fmt.Sprint(k.Line))
	}
	b.WriteString(". Someone may be intercepting the connection, or the node was recreated")
	if len(lines) > 0 {
		fmt.Fprintf(&b, "; if it was recreated, delete line %s of %s (or run: ssh-keygen -R '%s' -f %s)",
			strings.Join(lines, ", "), e.File, knownhosts.Normalize(e.Addr), e.File)
	}
	return b.String()
}

// hostKeys checks host keys against the lab's known_hosts file and records
// new ones. It is shared by every connection of a Transport; the lock keeps
// concurrent first contacts from losing each other's lines.
type hostKeys struct {
	file   string
	policy Policy
	logf   func(string, ...any)
	// readOnly keeps what record would write in memory: trusted keys
	// for this transport, by address (see Config.KnownHostsReadOnly).
	readOnly bool
	trusted  map[string][]ssh.PublicKey

	mu    sync.Mutex
	check ssh.HostKeyCallback // parsed file; nil until loaded or after a write
	probe ssh.PublicKey       // a key no host has, to list a host's known keys
}

func newHostKeys(file string, policy Policy, logf func(string, ...any)) (*hostKeys, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	probe, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	return &hostKeys{file: file, policy: policy, logf: logf, probe: probe}, nil
}

// load parses the file (once until the next write). A missing file is an
// empty one. Call with mu held.
func (h *hostKeys) load() (ssh.HostKeyCallback, error) {
	if h.check != nil {
		return h.check, nil
	}
	if _, err := os.Stat(h.file); errors.Is(err, os.ErrNotExist) {
		h.check = func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
		return h.check, nil
	}
	cb, err := knownhosts.New(h.file)
	if err != nil {
		return nil, fmt.Errorf("known_hosts %s: %w", h.file, err)
	}
	h.check = cb
	return cb, nil
}

// known returns the recorded keys for addr.
func (h *hostKeys) known(addr string) ([]knownhosts.KnownKey, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.knownLocked(addr)
}

// algorithms returns the host key algorithms to ask a target for: those
// of its recorded or pinned keys, so that a server with several host keys
// shows the one we know (as OpenSSH does). Nil means any.
func (h *hostKeys) algorithms(t Target) []string {
	var keys []ssh.PublicKey
	if h.policy == Pinned {
		keys = t.HostKeys
	} else if known, err := h.known(t.Addr()); err == nil {
		for _, k := range known {
			keys = append(keys, k.Key)
		}
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range keys {
		for _, a := range algorithmsFor(k.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// callback returns the host key callback for target t.
func (h *hostKeys) callback(t Target) ssh.HostKeyCallback {
	return func(_ string, remote net.Addr, key ssh.PublicKey) error {
		addr := t.Addr()
		if h.policy == Pinned {
			return h.checkPinned(t, addr, key)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		cb, err := h.load()
		if err != nil {
			return err
		}
		err = cb(addr, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) > 0:
			return &HostKeyError{Node: t.String(), Addr: addr, Offered: key, Known: ke.Want, File: h.file, kind: ErrHostKeyChanged}
		case errors.As(err, &ke) && h.policy == Strict:
			return &HostKeyError{Node: t.String(), Addr: addr, Offered: key, File: h.file, kind: ErrHostKeyUnknown}
		case errors.As(err, &ke):
			var meanwhile *recordedMeanwhile
			if err := h.record(addr, key, false); errors.As(err, &meanwhile) {
				return &HostKeyError{Node: t.String(), Addr: addr, Offered: key, Known: meanwhile.known, File: h.file, kind: ErrHostKeyChanged}
			} else if err != nil {
				return fmt.Errorf("recording host key of %s: %w", t, err)
			}
			if h.readOnly {
				h.logf("%s: trusting host key %s %s for this run only (not recorded: read-only)", t, key.Type(), ssh.FingerprintSHA256(key))
			} else {
				h.logf("%s: recorded host key %s %s in %s", t, key.Type(), ssh.FingerprintSHA256(key), h.file)
			}
			return nil
		default:
			return err // revoked key and the like
		}
	}
}

func (h *hostKeys) checkPinned(t Target, addr string, key ssh.PublicKey) error {
	if len(t.HostKeys) == 0 {
		return fmt.Errorf("%s: host-key policy pinned, but the provider supplied no host key for %s", t, addr)
	}
	for _, k := range t.HostKeys {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			// Keep the file in step so that `ssh -o UserKnownHostsFile=`
			// works for the user too; a recreated node replaces its line.
			h.mu.Lock()
			defer h.mu.Unlock()
			if known, _ := h.knownLocked(addr); !containsKey(known, key) {
				if err := h.record(addr, key, true); err != nil {
					return fmt.Errorf("recording host key of %s: %w", t, err)
				}
			}
			return nil
		}
	}
	known := make([]knownhosts.KnownKey, 0, len(t.HostKeys))
	for _, k := range t.HostKeys {
		known = append(known, knownhosts.KnownKey{Key: k})
	}
	return &HostKeyError{Node: t.String(), Addr: addr, Offered: key, Known: known, File: h.file, kind: ErrHostKeyChanged}
}

func (h *hostKeys) knownLocked(addr string) ([]knownhosts.KnownKey, error) {
	cb, err := h.load()
	if err != nil {
		return nil, err
	}
	err = cb(addr, fakeAddr(addr), h.probe)
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		return ke.Want, nil
	}
	return nil, err
}

func containsKey(known []knownhosts.KnownKey, key ssh.PublicKey) bool {
	for _, k := range known {
		if bytes.Equal(k.Key.Marshal(), key.Marshal()) {
			return true
		}
	}
	return false
}

// record adds a line for addr (replacing the lines for addr when replace is
// set) and writes the file atomically: a temporary file in the same
// directory, 0600, synced, then renamed over the old one. Call with mu held.
// mu orders this process's writers; an flock on a sibling file orders
// those of other lab processes on the same lab (lab status while lab up
// runs), so neither loses the other's line.
func (h *hostKeys) record(addr string, key ssh.PublicKey, replace bool) error {
	if h.readOnly {
		if !replace {
			for _, k := range h.trusted[addr] {
				if !bytes.Equal(k.Marshal(), key.Marshal()) {
					return &recordedMeanwhile{known: []knownhosts.KnownKey{{Key: k}}}
				}
			}
		}
		if h.trusted == nil {
			h.trusted = map[string][]ssh.PublicKey{}
		}
		h.trusted[addr] = []ssh.PublicKey{key}
		return nil
	}
	unlock, err := lockFile(h.file + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	old, err := os.ReadFile(h.file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	host := knownhosts.Normalize(addr)
	if !replace {
		// Another lab process may have recorded a key for addr since this
		// one read the file: that key decides, as if it had been there
		// all along, or trust on first use would trust twice.
		if known := keysFor(h.file, old, host); len(known) > 0 {
			h.check = nil
			if containsKey(known, key) {
				return nil
			}
			return &recordedMeanwhile{known: known}
		}
	}
	var buf bytes.Buffer
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if line == "" {
			continue
		}
		if replace {
			if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && !strings.HasPrefix(f[0], "@") &&
				containsString(strings.Split(f[0], ","), host) {
				continue
			}
		}
		buf.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			buf.WriteByte('\n')
		}
	}
	buf.WriteString(knownhosts.Line([]string{host}, key))
	buf.WriteByte('\n')
	if err := os.MkdirAll(filepath.Dir(h.file), 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(h.file, buf.Bytes(), 0o600); err != nil {
		return err
	}
	h.check = nil
	return nil
}

// recordedMeanwhile says that another lab process recorded other keys for
// the address between this process's check and its record.
type recordedMeanwhile struct{ known []knownhosts.KnownKey }

func (e *recordedMeanwhile) Error() string { return "another key was recorded meanwhile" }

// keysFor returns the keys data (the content of known_hosts file) holds
// for host, with their line numbers.
func keysFor(file string, data []byte, host string) []knownhosts.KnownKey {
	var known []knownhosts.KnownKey
	rest := data
	for len(rest) > 0 {
		marker, hosts, key, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			break
		}
		rest = next
		if marker == "" && containsString(hosts, host) {
			line := bytes.Count(data[:len(data)-len(rest)], []byte("\n"))
			if len(rest) == 0 && !bytes.HasSuffix(data, []byte("\n")) {
				line++
			}
			known = append(known, knownhosts.KnownKey{Key: key, Filename: file, Line: line})
		}
	}
	return known
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fakeAddr is the net.Addr for addr given to knownhosts, which also checks
// the remote address when it differs from the host name.
func fakeAddr(addr string) net.Addr {
	host, port, _ := net.SplitHostPort(addr)
	a := &net.TCPAddr{IP: net.ParseIP(host)}
	fmt.Sscan(port, &a.Port)
	return a
}

// lockFile takes an exclusive lock on path, creating it (0600).
func lockFile(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := filelock.Open(path, 0o600)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}
