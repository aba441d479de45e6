package nodeimage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/labctl/lab/provision/provider/docker/dockertest"
	"github.com/labctl/lab/provision/provider/docker/nodeimage"
)

// TestBuildIsCurrentAfterBuild builds the image (or finds it current) and
// proves a second build with the same inputs does nothing, and that the
// image carries no SSH host keys.
func TestBuildIsCurrentAfterBuild(t *testing.T) {
	cli := dockertest.Docker(t)
	tag := dockertest.NodeImage(t, cli)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := nodeimage.Build(ctx, nodeimage.Options{Docker: cli, Tag: tag})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Current {
		t.Errorf("second build with unchanged inputs rebuilt the image: %+v", res)
	}

	out, err := cli.Run(ctx, "run", "--rm", "--entrypoint", "/bin/sh", tag, "-c",
		"ls /etc/ssh; echo; for b in sshd haproxy keepalived containerd runc conntrack socat iptables ip ethtool ping curl; do command -v $b >/dev/null || echo missing $b; done")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "ssh_host_") {
		t.Errorf("image contains SSH host keys:\n%s", s)
	}
	if strings.Contains(s, "missing") {
		t.Errorf("image lacks programs:\n%s", s)
	}
}
