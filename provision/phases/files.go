package phases

import (
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// files are the files phase installs on node. nodefiles decides them, for
// `lab up` exactly as for `lab render`: a phase installs its group and
// nothing else. They are rendered with node's gathered interface and kind;
// a phase that installs credentials passes them in with (kubeadm's,
// lab-node's).
func (r *Run) files(node, phase string, with ...func(*nodefiles.Inputs)) ([]templates.File, error) {
	f, err := r.Facts(node)
	if err != nil {
		return nil, err
	}
	in := nodefiles.Inputs{Facts: templates.Facts{Interface: f.Interface, Container: r.Containers}}
	for _, set := range with {
		set(&in)
	}
	return nodefiles.ForPhase(r.Lab, r.node(node), phase, in)
}
