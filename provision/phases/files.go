package phases

import (
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// inputs are what node's files depend on, as far as this run knows them:
// its gathered interface and its kind. Phases that install credentials add
// them.
func (r *Run) inputs(node string) (nodefiles.Inputs, error) {
	f, err := r.Facts(node)
	if err != nil {
		return nodefiles.Inputs{}, err
	}
	return nodefiles.Inputs{Facts: templates.Facts{Interface: f.Interface, Container: r.Containers}}, nil
}

// files are the files phase installs on node. nodefiles decides them, for
// `lab up` exactly as for `lab render`: a phase installs its group and
// nothing else.
func (r *Run) files(node, phase string) ([]templates.File, error) {
	in, err := r.inputs(node)
	if err != nil {
		return nil, err
	}
	return nodefiles.ForPhase(r.Lab, r.node(node), phase, in)
}
