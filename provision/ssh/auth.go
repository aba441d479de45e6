package ssh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/term"
)

// ErrAuth is matched (errors.Is) by authentication failures: the node
// refused every key offered. It is permanent: retrying cannot help.
var ErrAuth = errors.New("authentication failed")

// ErrEncryptedKey is matched by the error for an encrypted key file whose
// passphrase cannot be asked for.
var ErrEncryptedKey = errors.New("encrypted key")

// auth holds the keys a Transport offers: the agent's (asked at each
// connection, so keys added later count) and the key files' (loaded once).
type auth struct {
	files     []ssh.Signer
	fileNames []string
	agentSock string
	agentErr  error // why the agent is not used, when asked for
	mu        sync.Mutex
	agentConn net.Conn
	agentUser agent.ExtendedAgent
}

func newAuth(cfg *Config) (*auth, error) {
	a := &auth{}
	if cfg.Agent {
		a.agentSock = cfg.AgentSocket
		if a.agentSock == "" {
			a.agentSock = os.Getenv("SSH_AUTH_SOCK")
		}
		if a.agentSock == "" {
			a.agentErr = errors.New("no ssh-agent (SSH_AUTH_SOCK is not set)")
		}
	}
	for _, f := range cfg.KeyFiles {
		path := expandHome(f)
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("ssh key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			signer, err = decrypt(path, pem, cfg.Passphrase)
		}
		if err != nil {
			return nil, fmt.Errorf("ssh key %s: %w", path, err)
		}
		a.files = append(a.files, signer)
		a.fileNames = append(a.fileNames, path)
	}
	if len(a.files) == 0 && a.agentSock == "" {
		if a.agentErr != nil {
			return nil, fmt.Errorf("ssh: no key to log in with: no key files given and %v", a.agentErr)
		}
		return nil, errors.New("ssh: no key to log in with: give key files or use ssh-agent")
	}
	return a, nil
}

func decrypt(path string, pem []byte, ask PassphraseFunc) (ssh.Signer, error) {
	if ask == nil {
		return nil, fmt.Errorf("%w: it needs a passphrase and lab cannot ask for one here; "+
			"load it into ssh-agent (ssh-add %s) or run lab on a terminal", ErrEncryptedKey, path)
	}
	pass, err := ask(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w; load it into ssh-agent instead (ssh-add %s)", ErrEncryptedKey, err, path)
	}
	s, err := ssh.ParsePrivateKeyWithPassphrase(pem, pass)
	clear(pass)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncryptedKey, err)
	}
	return s, nil
}

// TerminalPassphrase asks for passphrases on tty when it is a terminal, and
// otherwise fails with an error that says so (CI, pipes, cron).
func TerminalPassphrase(tty *os.File) PassphraseFunc {
	return func(keyFile string) ([]byte, error) {
		fd := int(tty.Fd())
		if !term.IsTerminal(fd) {
			return nil, fmt.Errorf("no terminal to ask for the passphrase of %s", keyFile)
		}
		fmt.Fprintf(os.Stderr, "Enter passphrase for %s: ", keyFile)
		defer fmt.Fprintln(os.Stderr)
		return term.ReadPassword(fd)
	}
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// agentClient returns a connection to the agent, dialling it on first use.
func (a *auth) agentClient() (agent.ExtendedAgent, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.agentErr != nil {
		return nil, a.agentErr
	}
	if a.agentUser != nil {
		return a.agentUser, nil
	}
	c, err := net.Dial("unix", a.agentSock)
	if err != nil {
		return nil, fmt.Errorf("ssh-agent at %s: %w", a.agentSock, err)
	}
	a.agentConn, a.agentUser = c, agent.NewClient(c)
	return a.agentUser, nil
}

// methods returns the auth methods for one connection: agent keys first,
// then key files (OpenSSH's order).
func (a *auth) methods() []ssh.AuthMethod {
	return []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		var signers []ssh.Signer
		if a.agentSock != "" {
			if ag, err := a.agentClient(); err == nil {
				if s, err := ag.Signers(); err == nil {
					signers = append(signers, s...)
				}
			}
		}
		return append(signers, a.files...), nil
	})}
}

// describe lists the keys offered, for an authentication error.
func (a *auth) describe() string {
	var parts []string
	if a.agentSock != "" || a.agentErr != nil {
		ag, err := a.agentClient()
		if err == nil {
			var keys []*agent.Key
			keys, err = ag.List()
			if err == nil {
				var fps []string
				for _, k := range keys {
					fps = append(fps, fmt.Sprintf("%s %s %s", k.Type(), ssh.FingerprintSHA256(k), k.Comment))
				}
				if len(fps) == 0 {
					parts = append(parts, fmt.Sprintf("ssh-agent at %s (holds no keys)", a.agentSock))
				} else {
					parts = append(parts, fmt.Sprintf("ssh-agent at %s (%s)", a.agentSock, strings.Join(fps, "; ")))
				}
			}
		}
		if err != nil {
			parts = append(parts, fmt.Sprintf("not the agent: %v", err))
		}
	}
	for i, s := range a.files {
		pub := s.PublicKey()
		parts = append(parts, fmt.Sprintf("key file %s (%s %s)", a.fileNames[i], pub.Type(), ssh.FingerprintSHA256(pub)))
	}
	return strings.Join(parts, ", ")
}

func (a *auth) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.agentConn != nil {
		a.agentConn.Close()
		a.agentConn, a.agentUser = nil, nil
	}
}
