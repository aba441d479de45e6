// Package ssh is lab's transport to nodes: one verified, kept-alive SSH
// connection per node (optionally through jump hosts), commands run as
// root with their remote processes stopped on cancellation, output
// streamed line by line with secrets masked, atomic SFTP uploads that skip
// unchanged files, and fan-out over many nodes.
//
// Host keys are always verified, against the lab's own known_hosts file or
// keys a provider pinned, never against the user's ~/.ssh/known_hosts, so
// nodes recreated at reused addresses do not poison it.
package ssh

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Policy says which host keys are trusted.
type Policy string

// Host-key policies. The names are those of the lab file's ssh.knownHosts.
const (
	// AcceptNew trusts the first key a node shows and records it in the
	// lab's known_hosts file; a changed key is refused.
	AcceptNew Policy = "accept-new"
	// Strict trusts only keys already in the known_hosts file.
	Strict Policy = "strict"
	// Pinned trusts only Target.HostKeys, which a provider read out of band
	// (for example from a container or VM it created). Accepted keys are
	// also recorded in the known_hosts file so that OpenSSH can use it.
	Pinned Policy = "pinned"
)

// Target is one machine to connect to: a node or a jump host.
type Target struct {
	// Name names the node in output and errors.
	Name string
	Host string
	Port int // default 22
	User string
	// HostKeys are keys pinned by a provider; required under Pinned.
	HostKeys []ssh.PublicKey
}

// Addr is host:port.
func (t Target) Addr() string {
	port := t.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}

func (t Target) String() string {
	if t.Name != "" {
		return t.Name
	}
	return t.Addr()
}

// PassphraseFunc returns the passphrase of an encrypted private key file.
type PassphraseFunc func(keyFile string) ([]byte, error)

// Config is what a Transport needs. The zero value of each field means its
// documented default.
type Config struct {
	// KeyFiles are private key files (ed25519, ecdsa, rsa) offered in order.
	KeyFiles []string
	// Agent offers the keys of the ssh-agent at AgentSocket (or
	// $SSH_AUTH_SOCK) first.
	Agent       bool
	AgentSocket string
	// Passphrase is asked for encrypted key files. Without it an encrypted
	// key is an error that says how to load it into ssh-agent instead.
	// The CLI passes TerminalPassphrase(os.Stdin).
	Passphrase PassphraseFunc

	// KnownHosts is the lab's own known_hosts file (in its state
	// directory). It is created 0600 when a key is first recorded.
	KnownHosts string
	Policy     Policy // default AcceptNew
	// KnownHostsReadOnly never writes KnownHosts: a key the policy would
	// record is trusted by this transport only (lab up --dry-run, which
	// changes nothing). Changed keys are refused as always.
	KnownHostsReadOnly bool

	// Jumps are jump hosts, outermost first (like ProxyJump a,b). Their
	// host keys are checked like nodes' (under Pinned they need HostKeys
	// too); one connection to each is shared by every node behind it.
	Jumps []Target

	// ConnectTimeout bounds connecting to a node including all retries
	// while it boots (default 2m); AttemptTimeout bounds one attempt
	// (default 15s).
	ConnectTimeout time.Duration
	AttemptTimeout time.Duration
	// KeepAlive is the interval of keepalive requests (default 15s); a
	// connection that leaves KeepAliveMax (default 3) of them unanswered
	// is closed, so that commands on it fail instead of hanging.
	KeepAlive    time.Duration
	KeepAliveMax int
	// MaxSessions caps concurrent sessions on one connection (default 10,
	// OpenSSH's MaxSessions).
	MaxSessions int
	// TailLines is how many output lines a command error keeps (default 20).
	TailLines int
	// KillGrace is how long a cancelled command gets to exit after SIGTERM
	// before SIGKILL (default 2s).
	KillGrace time.Duration
	// Ciphers overrides the cipher preference (default x/crypto's, which
	// starts with aes128-gcm@openssh.com).
	Ciphers []string

	// Output receives every output line of every command, secrets masked.
	// It is called from many goroutines at once.
	Output func(Line)
	// Logf receives connection events (retries, recorded host keys).
	Logf func(format string, args ...any)
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Policy == "" {
		d.Policy = AcceptNew
	}
	def := func(v *time.Duration, x time.Duration) {
		if *v <= 0 {
			*v = x
		}
	}
	def(&d.ConnectTimeout, 2*time.Minute)
	def(&d.AttemptTimeout, 15*time.Second)
	def(&d.KeepAlive, 15*time.Second)
	def(&d.KillGrace, 2*time.Second)
	if d.KeepAliveMax <= 0 {
		d.KeepAliveMax = 3
	}
	if d.MaxSessions <= 0 {
		d.MaxSessions = 10
	}
	if d.TailLines <= 0 {
		d.TailLines = 20
	}
	return d
}

func (c *Config) validate() error {
	switch c.Policy {
	case AcceptNew, Strict, Pinned:
	default:
		return fmt.Errorf("ssh: unknown host-key policy %q (use accept-new, strict or pinned)", c.Policy)
	}
	if c.KnownHosts == "" {
		return fmt.Errorf("ssh: no known_hosts file: each lab keeps its own in its state directory")
	}
	return nil
}

// Line is one line of a command's output.
type Line struct {
	Node   string
	Stream string // "stdout" or "stderr"
	Text   string // secrets masked
}

// PrefixWriter returns an Output function that writes "node | text" lines
// to w, one line at a time even when nodes report concurrently.
func PrefixWriter(w io.Writer) func(Line) {
	var mu sync.Mutex
	return func(l Line) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s | %s\n", l.Node, l.Text)
	}
}
