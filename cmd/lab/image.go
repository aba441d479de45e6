package main

import (
	"fmt"
	"os"

	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/docker/nodeimage"
	"github.com/spf13/cobra"
)

// userland finds the Debian root file system the build artifact source
// takes kube-proxy's iptables from, and docker labs' bundles carry: the one
// `lab image build` leaves in the node image's cache. It is the only link
// from the generic commands to the docker provider's node image, handed
// to provision and used by bundle create.
func userland(nodeImageDir string) (string, error) { return nodeimage.BaseTarball(nodeImageDir) }

func newImageCommand(s *settings) *cobra.Command {
	img := &cobra.Command{Use: "image", Short: "Build the container node image"}
	var (
		tag   string
		force bool
	)
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the node image offline from Debian packages (debootstrap + docker import)",
		Long: `build makes the image container nodes run: Debian bookworm with systemd, sshd,
haproxy, keepalived, containerd, runc, conntrack, socat, iptables and FRR (off
until a lab's BGP router turns it on). Host keys are generated per node at
first boot. An image built from the same inputs is
kept; --force rebuilds it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lay, err := artifacts.NewLayout(s.CacheDir)
			if err != nil {
				return err
			}
			res, err := nodeimage.Build(cmd.Context(), nodeimage.Options{
				Tag:      tag,
				CacheDir: lay.NodeImageDir(),
				Force:    force,
				Log:      os.Stderr,
			})
			if err != nil {
				return err
			}
			if res.Current {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is up to date (%s)\n", res.Tag, res.Hash)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "built %s (%s): debootstrap %s (cached: %v), import %s\n",
				res.Tag, res.Hash, res.Debootstrap.Round(100e6), res.BaseCached, res.Import.Round(100e6))
			return nil
		},
	}
	build.Flags().StringVar(&tag, "tag", labfile.DefaultDockerImage, "image name:tag")
	build.Flags().BoolVar(&force, "force", false, "rebuild even when the image is current")
	img.AddCommand(build)
	return img
}
