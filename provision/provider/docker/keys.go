package docker

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/labctl/lab/internal/atomicfile"
	"github.com/labctl/lab/provision/labfile"
)

// keyName is the lab's SSH client key in the state directory.
const keyName = "id_ed25519"

// KeyFile is the private key the provider authorises on every node.
func (p *Provider) KeyFile() string { return filepath.Join(p.stateDir, keyName) }

// clientKey returns the lab's public key in authorized_keys format,
// generating the key pair on first use. The private key never leaves the
// state directory; nodes only ever see the public half.
func (p *Provider) clientKey(lab *labfile.Lab) (string, error) {
	priv := p.KeyFile()
	pubPath := priv + ".pub"
	if data, err := os.ReadFile(pubPath); err == nil {
		if _, err := os.Stat(priv); err == nil {
			k, comment, _, _, err := ssh.ParseAuthorizedKey(data)
			if err != nil {
				return "", fmt.Errorf("%s: %w", pubPath, err)
			}
			return authorizedLine(k, comment), nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}

	if err := os.MkdirAll(p.stateDir, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate lab SSH key: %w", err)
	}
	comment := "lab-" + lab.Metadata.Name
	block, err := ssh.MarshalPrivateKey(sk, comment)
	if err != nil {
		return "", fmt.Errorf("encode lab SSH key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pk)
	if err != nil {
		return "", err
	}
	line := authorizedLine(sshPub, comment)
	// The public half is written last: its presence means the pair is
	// complete.
	if err := atomicfile.WriteFile(priv, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", fmt.Errorf("write lab SSH key: %w", err)
	}
	if err := atomicfile.WriteFile(pubPath, []byte(line+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write lab SSH key: %w", err)
	}
	return line, nil
}

func authorizedLine(k ssh.PublicKey, comment string) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if comment != "" {
		line += " " + comment
	}
	return line
}
