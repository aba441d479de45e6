package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/labctl/lab/internal/sshtest"
	"github.com/labctl/lab/provision/ssh"
	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// benchNodes starts n nodes whose keys are already in a known_hosts file.
func benchNodes(b *testing.B, n int) (*sshtest.Harness, *sshtest.Key, string, []ssh.Target) {
	b.Helper()
	h := sshtest.New(b)
	key := h.NewKey("id", sshtest.Ed25519, "")
	h.Authorize("root", key)
	known := filepath.Join(b.TempDir(), "known_hosts")
	var lines []byte
	var targets []ssh.Target
	for i := range n {
		node := h.StartNode(sshtest.NodeOptions{Name: fmt.Sprintf("n%d", i+1)})
		targets = append(targets, ssh.Target{Name: node.Name, Host: node.Host, Port: node.Port, User: "root"})
		lines = append(lines, knownhosts.Line([]string{knownhosts.Normalize(node.Addr())}, node.HostKeys[0])+"\n"...)
	}
	if err := os.WriteFile(known, lines, 0o600); err != nil {
		b.Fatal(err)
	}
	return h, key, known, targets
}

// BenchmarkFanOut runs `true` on every node with fresh connections (as a
// one-shot `lab` command does), host keys checked (policy strict).
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			_, key, known, targets := benchNodes(b, n)
			cfg := ssh.Config{KeyFiles: []string{key.Path}, KnownHosts: known, Policy: ssh.Strict}
			b.ResetTimer()
			for b.Loop() {
				tr, err := ssh.New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				err = tr.Each(context.Background(), targets, n, func(ctx context.Context, c *ssh.Client) error {
					return c.Run(ctx, "true")
				})
				tr.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBareFanOut is the reference: plain x/crypto/ssh, one dial and
// one session per node, host keys checked by knownhosts.
func BenchmarkBareFanOut(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			_, key, known, targets := benchNodes(b, n)
			pem, _ := os.ReadFile(key.Path)
			signer, err := xssh.ParsePrivateKey(pem)
			if err != nil {
				b.Fatal(err)
			}
			check, err := knownhosts.New(known)
			if err != nil {
				b.Fatal(err)
			}
			cfg := &xssh.ClientConfig{User: "root", Auth: []xssh.AuthMethod{xssh.PublicKeys(signer)}, HostKeyCallback: check}
			b.ResetTimer()
			for b.Loop() {
				var wg sync.WaitGroup
				errs := make([]error, n)
				for i, tg := range targets {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs[i] = bareRun(cfg, net.JoinHostPort(tg.Host, strconv.Itoa(tg.Port)))
					}()
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func bareRun(cfg *xssh.ClientConfig, addr string) error {
	c, err := xssh.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Run("true")
}

// BenchmarkUpload sends 100 MiB to each of 5 nodes at once (a new file
// each time, so nothing is skipped) and reports the total throughput.
func BenchmarkUpload(b *testing.B) {
	_, key, known, targets := benchNodes(b, 5)
	src := filepath.Join(b.TempDir(), "blob")
	data := make([]byte, 100<<20)
	cfg := ssh.Config{KeyFiles: []string{key.Path}, KnownHosts: known, Policy: ssh.Strict}
	tr, err := ssh.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	dir := b.TempDir()
	if err := os.WriteFile(src, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data) * len(targets)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		err := tr.Each(context.Background(), targets, 0, func(ctx context.Context, c *ssh.Client) error {
			_, err := c.Upload(ctx, ssh.File{Src: src, Dst: filepath.Join(dir, fmt.Sprintf("%s-%d", c.Name(), i))})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
