package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/labctl/lab/internal/atomicfile"
	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/provider/registry"
	"github.com/spf13/cobra"
)

func newBundleCommand(s *settings) *cobra.Command {
	b := &cobra.Command{
		Use:   "bundle",
		Short: "Carry a lab's artifacts to an offline site in one archive",
		Long: `A bundle holds everything a lab with kubernetes.artifacts: build or release
gathers on this machine — kubeadm, kubelet, kubectl, the CNI loopback plugin
and the images; for a Cilium lab its Cilium set (the chart, and with build
the Cilium images and helm); and, for docker labs, the node image's Debian
root file system. Create it where the artifacts can be downloaded or built,
import it at the offline site, and lab up finds everything in the cache
there.`,
	}
	b.AddCommand(newBundleCreateCommand(s), newBundleImportCommand(s))
	return b
}

func newBundleCreateCommand(s *settings) *cobra.Command {
	var (
		out  string
		arch string
	)
	cmd := &cobra.Command{
		Use:   "create [FILE]",
		Short: "Gather the lab's artifacts (from the cache, or now) and write them to one archive",
		Long: `create writes the Set of artifacts the lab needs to --output-file (default
<lab>-bundle.tar; a name ending in .gz or .tgz is gzip-compressed). What is
not in the cache yet is gathered first, by the lab's artifact source. The
archive is written to a temporary name and renamed when complete.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, err := loadLab(cmd, s, args)
			if err != nil {
				return err
			}
			k := &lab.Kubernetes
			if k.Artifacts != labfile.ArtifactsBuild && k.Artifacts != labfile.ArtifactsRelease {
				return usageError{fmt.Errorf("%s: kubernetes.artifacts is %s: each node installs packages from repositories, so there is nothing to bundle; use release or build", lab.Path, k.Artifacts)}
			}
			if out == "" {
				out = lab.Metadata.Name + "-bundle.tar"
			}
			start := time.Now()
			lay, err := artifacts.NewLayout(s.CacheDir)
			if err != nil {
				return err
			}
			rootfs := func() (string, error) { return userland(lay.NodeImageDir()) }
			o := artifacts.GatherOptions{Userland: rootfs, Log: cmd.ErrOrStderr()}
			set, _, err := lay.Cache().GatherFor(cmd.Context(), k, arch, o)
			if err != nil {
				return err
			}
			var cilium []*artifacts.CiliumSet
			if lab.CNI.Type == labfile.CNICilium {
				cs, _, err := lay.Cache().GatherCilium(cmd.Context(), artifacts.CiliumGatherOptions{
					Version: lab.CNI.Cilium.Version, Arch: arch, Source: set.Source, Userland: rootfs, Log: cmd.ErrOrStderr(),
				})
				if err != nil {
					return fmt.Errorf("%s: Cilium %s: %w", lab.Path, lab.CNI.Cilium.Version, err)
				}
				cilium = append(cilium, cs)
			}
			var extras []artifacts.Extra
			if registry.Traits(lab).BundleRootFS {
				base, err := rootfs()
				if err != nil {
					return fmt.Errorf("%s: a %s lab's bundle carries the node image's root file system: %w", lab.Path, lab.Provider.Type, err)
				}
				extras = append(extras, artifacts.NodeImageExtra(base))
			}
			m, size, err := writeBundleFile(out, lab.Metadata.Name, set, cilium, extras)
			if err != nil {
				return err
			}
			return report(cmd, s, "created", out, m, size, time.Since(start))
		},
	}
	cmd.Flags().StringVarP(&out, "output-file", "O", "", "the archive to write (default <lab>-bundle.tar)")
	cmd.Flags().StringVar(&arch, "arch", runtime.GOARCH, "the nodes' architecture (amd64, arm64)")
	return cmd
}

// writeBundleFile writes the bundle atomically: an interrupted run leaves
// no partial archive at out for someone to carry away.
func writeBundleFile(out, lab string, set *artifacts.Set, cilium []*artifacts.CiliumSet, extras []artifacts.Extra) (*artifacts.BundleManifest, int64, error) {
	f, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return nil, 0, err
	}
	defer f.Discard()
	compress := strings.HasSuffix(out, ".gz") || strings.HasSuffix(out, ".tgz")
	m, err := artifacts.WriteBundle(f, lab, []*artifacts.Set{set}, cilium, extras, compress)
	if err != nil {
		return nil, 0, err
	}
	if err := f.Commit(); err != nil {
		return nil, 0, err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return nil, 0, err
	}
	return m, fi.Size(), nil
}

func newBundleImportCommand(s *settings) *cobra.Command {
	return &cobra.Command{
		Use:   "import BUNDLE",
		Short: "Read a bundle into the cache; every file is checked against its digest",
		Long: `import reads a bundle made by lab bundle create (plain or gzip-compressed, or
- for standard input) into the cache (--cache-dir). Every file is verified
against the digest in the bundle's manifest before it is renamed into place;
the Sets that make files findable are written last, so a damaged or
interrupted import leaves nothing lab up would use.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			var r io.Reader = cmd.InOrStdin()
			size := int64(-1)
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						return usageError{fmt.Errorf("bundle %s does not exist (make one with lab bundle create)", args[0])}
					}
					return err
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil {
					size = fi.Size()
				}
				r = f
			}
			lay, err := artifacts.NewLayout(s.CacheDir)
			if err != nil {
				return err
			}
			m, err := artifacts.ReadBundle(r, lay)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return report(cmd, s, "imported", args[0], m, size, time.Since(start))
		},
	}
}

// report prints what a bundle command did, as text or one JSON object.
func report(cmd *cobra.Command, s *settings, did, file string, m *artifacts.BundleManifest, size int64, took time.Duration) error {
	var total int64
	for _, f := range m.Files {
		total += f.Size
	}
	if s.Output == "json" {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
			did: file, "lab": m.Lab, "sets": m.Sets, "ciliumSets": m.CiliumSets, "files": len(m.Files),
			"contentBytes": total, "archiveBytes": size, "seconds": took.Seconds(),
		})
	}
	for _, st := range m.Sets {
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s: Kubernetes %s for %s from the %s source (set %s)\n", did, file, st.Version, st.Arch, st.Source, st.Key)
	}
	for _, st := range m.CiliumSets {
		what := "images, chart and helm built here"
		if st.Source != artifacts.SourceBuild {
			what = "the chart; the nodes pull upstream's images"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s: Cilium %s for %s, %s (set %s)\n", did, file, st.Version, st.Arch, what, st.Key)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d files, %.1f MiB of content", len(m.Files), float64(total)/(1<<20))
	if size >= 0 {
		fmt.Fprintf(cmd.OutOrStdout(), ", archive %.1f MiB", float64(size)/(1<<20))
	}
	fmt.Fprintf(cmd.OutOrStdout(), ", in %s\n", took.Round(100*time.Millisecond))
	return nil
}
