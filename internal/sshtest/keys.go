package sshtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"
)

// Key types for NewKey.
const (
	Ed25519 = "ed25519"
	ECDSA   = "ecdsa"
	RSA     = "rsa"
)

// Key is a private key written to a file in OpenSSH format.
type Key struct {
	Path       string
	Public     ssh.PublicKey
	Passphrase string // empty: not encrypted
}

// AuthorizedKey returns the key as an authorized_keys line.
func (k *Key) AuthorizedKey() []byte { return ssh.MarshalAuthorizedKey(k.Public) }

// Fingerprint is the key's SHA256 fingerprint as OpenSSH prints it.
func (k *Key) Fingerprint() string { return ssh.FingerprintSHA256(k.Public) }

func generate(typ string) (crypto.Signer, error) {
	switch typ {
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case ECDSA:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("unknown key type %q", typ)
}

// writeKey generates a key of typ and writes it (0600) to path, encrypted
// when passphrase is not empty, with the public half in path.pub.
func writeKey(path, typ, passphrase string) (*Key, error) {
	priv, err := generate(typ)
	if err != nil {
		return nil, err
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "lab-test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "lab-test", []byte(passphrase))
	}
	if err != nil {
		return nil, err
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		return nil, err
	}
	return &Key{Path: path, Public: pub, Passphrase: passphrase}, nil
}

// NewKey generates a client key named name (ed25519, ecdsa or rsa),
// encrypted with passphrase unless it is empty. It is not authorized
// anywhere until passed to Authorize.
func (h *Harness) NewKey(name, typ, passphrase string) *Key {
	h.t.Helper()
	dir := filepath.Join(h.Dir, "client")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		h.t.Fatalf("sshtest: %v", err)
	}
	k, err := writeKey(filepath.Join(dir, name), typ, passphrase)
	if err != nil {
		h.t.Fatalf("sshtest: key %s: %v", name, err)
	}
	return k
}

// Agent starts a real ssh-agent holding keys (added with ssh-add) and
// returns its socket path. The agent is stopped by the test's cleanup.
func (h *Harness) Agent(keys ...*Key) string {
	h.t.Helper()
	sock := filepath.Join(h.Dir, fmt.Sprintf("agent-%d.sock", time.Now().UnixNano()))
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("sshtest: ssh-agent: %v", err)
	}
	h.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if err := waitFor(10*time.Second, func() error {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		h.t.Fatalf("sshtest: ssh-agent did not listen on %s: %v", sock, err)
	}
	for _, k := range keys {
		add := exec.Command("ssh-add", k.Path)
		add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		if out, err := add.CombinedOutput(); err != nil {
			h.t.Fatalf("sshtest: ssh-add %s: %v: %s", k.Path, err, out)
		}
	}
	return sock
}

// waitFor calls f until it returns nil or the timeout passes, and returns
// f's last error then.
func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(delay)
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}
