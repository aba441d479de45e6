package kubeadm

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// Secrets are the credentials a kubeadm configuration carries. `lab up`
// generates them on the first control plane; `lab render` uses
// Placeholders. None of them ever appears in an error of this package.
type Secrets struct {
	// Token is the bootstrap token, [a-z0-9]{6}.[a-z0-9]{16}.
	Token string
	// CertificateKey is the 32-byte hex key that encrypts the control-plane
	// certificates kubeadm uploads for joining control planes.
	CertificateKey string
	// CACertHashes pin the cluster CA for join discovery: sha256:<hex>.
	CACertHashes []string
}

// Placeholders returns secrets that have the right shape, so the rendered
// files pass kubeadm's validation, and are obviously not real: `lab render`
// shows them instead of credentials that are only generated at `up` time.
func Placeholders() Secrets {
	return Secrets{
		Token:          "xxxxxx.placeholder00000",
		CertificateKey: strings.Repeat("0", 64),
		CACertHashes:   []string{"sha256:" + strings.Repeat("0", 64)},
	}
}

var errBadToken = errors.New("the bootstrap token is not of the form [a-z0-9]{6}.[a-z0-9]{16}")

// check validates the shape of the secrets with messages that never repeat
// them (kubeadm's own messages quote the bad value).
func (s Secrets) check(join bool) error {
	if !bootstraputil.IsValidBootstrapToken(s.Token) {
		return errBadToken
	}
	if b, err := hex.DecodeString(s.CertificateKey); err != nil || len(b) != 32 {
		return errors.New("the certificate key is not 64 hexadecimal characters (32 bytes)")
	}
	if join && len(s.CACertHashes) == 0 {
		return errors.New("join discovery needs at least one CA certificate hash")
	}
	for i, h := range s.CACertHashes {
		v, ok := strings.CutPrefix(h, "sha256:")
		if b, err := hex.DecodeString(v); !ok || err != nil || len(b) != 32 {
			return fmt.Errorf("CA certificate hash %d is not sha256:<64 hexadecimal characters>", i)
		}
	}
	return nil
}

// redact removes every secret from msg: a last line of defence for messages
// that come from kubeadm's code, which quotes values freely.
func redact(msg string, s Secrets) string {
	var secrets []string
	if s.Token != "" {
		secrets = append(secrets, s.Token)
		if _, secret, ok := strings.Cut(s.Token, "."); ok && secret != "" {
			secrets = append(secrets, secret)
		}
	}
	if s.CertificateKey != "" {
		secrets = append(secrets, s.CertificateKey)
	}
	for _, r := range secrets {
		msg = strings.ReplaceAll(msg, r, "<redacted>")
	}
	return msg
}
