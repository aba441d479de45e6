// Package dockertest gives tests a running Docker daemon and lab's node
// image. It starts the daemon with the repository's .ci/dockerd.sh when none
// answers, and builds the image (or reuses a current one), so container-node
// tests run the same way on a laptop and in CI.
//
// Without root, dockerd or debootstrap a test is skipped, unless
// LAB_REQUIRE_TOOLS=1 (as in CI), where it fails instead.
package dockertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/internal/tooltest"
	"github.com/labctl/lab/provision/provider/docker/dockercli"
	"github.com/labctl/lab/provision/provider/docker/nodeimage"
)

// Docker returns a client for a running daemon. A DOCKER_HOST that answers
// is used as is; otherwise .ci/dockerd.sh starts lab's own daemon.
func Docker(t testing.TB) *dockercli.CLI {
	t.Helper()
	cli, err := dockercli.New("")
	if err != nil {
		tooltest.Missing(t, "docker: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if os.Getenv("DOCKER_HOST") != "" {
		if _, err := cli.Run(ctx, "version"); err == nil {
			return cli
		}
	}
	tooltest.Root(t, "starting dockerd")
	tooltest.Path(t, "dockerd", "apt-get install docker.io")
	script, err := repoFile(".ci/dockerd.sh")
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	cli.Host = strings.TrimSpace(string(out))
	return cli
}

// NodeImage returns the tag of a current node image, building it if needed
// (the first build takes about a minute; later ones reuse the cache).
func NodeImage(t testing.TB, cli *dockercli.CLI) string {
	t.Helper()
	tooltest.Root(t, "building the node image")
	tooltest.Path(t, "debootstrap", "apt-get install debootstrap")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	res, err := nodeimage.Build(ctx, nodeimage.Options{Docker: cli, Log: testWriter{t}})
	if err != nil {
		t.Fatalf("build node image: %v", err)
	}
	if !res.Current {
		t.Logf("node image %s: debootstrap %v (cached: %v), import %v", res.Tag, res.Debootstrap, res.BaseCached, res.Import)
	}
	return res.Tag
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// repoFile finds rel in the repository that holds the test's working
// directory.
func repoFile(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", os.ErrNotExist
		}
		dir = up
	}
}
