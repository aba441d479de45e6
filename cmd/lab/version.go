package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/labctl/lab/provision/labfile"
	"github.com/spf13/cobra"
)

// version is set at build time: -ldflags "-X main.version=v0.1.0".
var version = "dev"

func newVersionCommand(s *settings) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print lab's version and the versions it installs by default",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := map[string]string{
				"lab":        version,
				"go":         runtime.Version(),
				"platform":   runtime.GOOS + "/" + runtime.GOARCH,
				"kubernetes": labfile.DefaultKubernetesVersion,
				"cilium":     labfile.DefaultCiliumVersion,
				"labfile":    labfile.APIVersion,
			}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, kv := range bi.Settings {
					if kv.Key == "vcs.revision" {
						info["commit"] = kv.Value
					}
				}
			}
			if s.Output == "json" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(info)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s (%s, %s)\nlab file %s; defaults: Kubernetes %s, Cilium %s\n",
				info["lab"], info["go"], info["platform"], info["labfile"], info["kubernetes"], info["cilium"])
			return nil
		},
	}
}
