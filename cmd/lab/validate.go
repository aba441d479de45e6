package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/labctl/lab/provision/fetch"
	"github.com/labctl/lab/provision/labfile"
	"github.com/spf13/cobra"
)

func newValidateCommand(s *settings) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a lab file and list every problem in it",
		Long: `validate loads the lab file strictly (unknown fields, wrong types and YAML errors
are reported with file:line:column) and checks the topology. Every problem is
listed at once; warnings do not fail. Exit code 1 when there are errors.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := labFile(args)
			lab, warns, err := readLab(cmd, s, file)
			var probs labfile.Problems
			switch {
			case errors.As(err, &probs):
			case err != nil:
				return err
			default:
				probs = warns
			}
			out := cmd.OutOrStdout()
			if s.Output == "json" {
				type problem struct {
					File     string `json:"file"`
					Line     int    `json:"line,omitempty"`
					Column   int    `json:"column,omitempty"`
					Path     string `json:"path,omitempty"`
					Severity string `json:"severity"`
					Message  string `json:"message"`
					Hint     string `json:"hint,omitempty"`
				}
				res := struct {
					File     string    `json:"file"`
					Valid    bool      `json:"valid"`
					Problems []problem `json:"problems"`
				}{File: file, Valid: err == nil, Problems: []problem{}}
				for _, p := range probs {
					res.Problems = append(res.Problems, problem{p.File, p.Line, p.Column, p.Path, p.Severity.String(), p.Message, p.Hint})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if encErr := enc.Encode(res); encErr != nil {
					return encErr
				}
			} else {
				for _, p := range probs {
					fmt.Fprintln(cmd.ErrOrStderr(), p)
				}
			}
			if err != nil {
				return silentError{fmt.Errorf("%s: %d errors", file, len(probs.Errors()))}
			}
			if s.Output == "text" {
				addons := ""
				for i, a := range lab.InstalledAddons() {
					if i == 0 {
						addons = ", add-ons "
					} else {
						addons += ", "
					}
					addons += a.Name
				}
				fmt.Fprintf(out, "%s: lab %s is valid: %d nodes (%d control planes), provider %s, endpoint %s (%s), cni %s%s\n",
					file, lab.Metadata.Name, len(lab.Nodes), len(lab.ControlPlanes()), lab.Provider.Type,
					lab.EndpointString(), lab.ControlPlane.Mode, lab.CNI.Type, addons)
			}
			return nil
		},
	}
}

// loadLab loads a lab file for commands that need a valid one, printing its
// warnings to stderr. A remote lab file (https://..., git::...) is fetched
// first, its checksum verified when the URL carries one.
func loadLab(cmd *cobra.Command, s *settings, args []string) (*labfile.Lab, error) {
	lab, warns, err := readLab(cmd, s, labFile(args))
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		fmt.Fprintln(cmd.ErrOrStderr(), w)
	}
	return lab, nil
}

// readLab loads a local or remote lab file; messages name the source as the
// user wrote it.
func readLab(cmd *cobra.Command, s *settings, src string) (*labfile.Lab, labfile.Problems, error) {
	if !fetch.IsRemote(src) {
		return labfile.LoadWith(src, s.Overrides)
	}
	sum := sha256.Sum256([]byte(src))
	local := filepath.Join(s.CacheDir, "labfiles", hex.EncodeToString(sum[:8])+".yaml")
	if err := fetch.File(cmd.Context(), src, local); err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(local)
	if err != nil {
		return nil, nil, err
	}
	lab, warns, err := labfile.ParseWith(src, data, s.Overrides)
	if lab != nil {
		lab.Path = local
	}
	return lab, warns, err
}
