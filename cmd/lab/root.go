package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/labctl/lab/provision/labfile"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// settings are the user's own preferences, the same for every lab: from
// $XDG_CONFIG_HOME/lab/config.yaml, then LAB_* environment variables, then
// flags, each overriding the one before.
type settings struct {
	Output   string // text or json
	Verbose  bool
	SSHKey   string // default private key when a lab names none
	CacheDir string // downloaded and built artifacts
	StateDir string // per-lab state: known_hosts, journal, secrets, kubeconfig
	// Vagrantfile replaces the Vagrantfile built into lab for vagrant labs
	// (setting vagrantfile, LAB_VAGRANTFILE), to try changes to it without
	// rebuilding lab.
	Vagrantfile string
	// Overrides change every lab file this command loads (--provider,
	// --set); they are flags only, never settings, so that no lab is
	// changed by a file the user forgot.
	Overrides labfile.Overrides
}

func newRootCommand() *cobra.Command {
	v := viper.New()
	s := &settings{}
	root := &cobra.Command{
		Use:   "lab",
		Short: "Turn one YAML lab file into a highly available Kubernetes cluster",
		Long: `lab reads a declarative lab file (nodes, roles, networks, versions) and builds the
cluster it describes: nodes from Vagrant, Docker or existing hosts, a Keepalived +
HAProxy virtual IP in front of kubeadm control planes, and an eBPF pod network.

FILE defaults to ./lab.yaml in every command that takes one.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return loadSettings(v, cmd.Flags(), s)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringP("output", "o", "text", "output format: text or json")
	pf.BoolP("verbose", "v", false, "show more detail")
	pf.String("config", "", "settings file (default $XDG_CONFIG_HOME/lab/config.yaml)")
	pf.String("ssh-key", "", "default SSH private key for labs that name none (setting ssh-key, LAB_SSH_KEY)")
	pf.String("cache-dir", "", "artifact cache (setting cache-dir, LAB_CACHE_DIR)")
	pf.String("state-dir", "", "per-lab state directory root (setting state-dir, LAB_STATE_DIR)")
	pf.StringVar(&s.Overrides.Provider, "provider", "", "run the lab file on another provider: docker runs a VirtualBox lab on container nodes, offline, with the same names and addresses (give it to every command for that lab)")
	pf.StringArrayVar(&s.Overrides.Set, "set", nil, "PATH=VALUE: change one value of the lab file as it loads, e.g. --set kubernetes.version=v1.34.12 (repeatable)")

	root.AddCommand(
		newValidateCommand(s),
		newRenderCommand(s),
		newPlanCommand(s),
		newGraphCommand(s),
		newVersionCommand(s),
		newUpCommand(s),
		newImageCommand(s),
		newBundleCommand(s),
		newResetCommand(s),
		newDownCommand(s),
		newStatusCommand(s),
		newDoctorCommand(s),
		newSSHCommand(s),
		newKubeconfigCommand(s),
		newLogsCommand(s),
		newVagrantVMsCommand(s),
	)
	return root
}

// loadSettings resolves settings: flags win over LAB_* variables, which win
// over the settings file, which wins over defaults.
func loadSettings(v *viper.Viper, flags *pflag.FlagSet, s *settings) error {
	v.SetEnvPrefix("LAB")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	for _, key := range []string{"output", "verbose", "ssh-key", "cache-dir", "state-dir"} {
		if err := v.BindPFlag(key, flags.Lookup(key)); err != nil {
			return err
		}
	}
	home, _ := os.UserHomeDir()
	cfgHome := os.Getenv("XDG_CONFIG_HOME")
	if cfgHome == "" {
		cfgHome = filepath.Join(home, ".config")
	}
	cacheHome := os.Getenv("XDG_CACHE_HOME")
	if cacheHome == "" {
		cacheHome = filepath.Join(home, ".cache")
	}
	stateHome := os.Getenv("XDG_STATE_HOME")
	if stateHome == "" {
		stateHome = filepath.Join(home, ".local", "state")
	}
	v.SetDefault("cache-dir", filepath.Join(cacheHome, "lab"))
	v.SetDefault("state-dir", filepath.Join(stateHome, "lab"))

	file, _ := flags.GetString("config")
	if file == "" {
		file = os.Getenv("LAB_CONFIG")
	}
	explicit := file != ""
	if !explicit {
		file = filepath.Join(cfgHome, "lab", "config.yaml")
	}
	v.SetConfigFile(file)
	if err := v.ReadInConfig(); err != nil {
		if _, statErr := os.Stat(file); explicit || statErr == nil {
			return usageError{fmt.Errorf("settings file %s: %w", file, err)}
		}
	}
	s.Output = v.GetString("output")
	s.Verbose = v.GetBool("verbose")
	s.SSHKey = v.GetString("ssh-key")
	s.CacheDir = v.GetString("cache-dir")
	s.StateDir = v.GetString("state-dir")
	s.Vagrantfile = v.GetString("vagrantfile")
	if s.Output != "text" && s.Output != "json" {
		return usageError{fmt.Errorf("--output %q: use text or json", s.Output)}
	}
	return nil
}

// labFile returns the lab file named on the command line, or ./lab.yaml.
func labFile(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return "lab.yaml"
}
