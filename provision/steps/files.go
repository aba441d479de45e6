package steps

import (
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// inputs are what node's files depend on, as far as this run knows them:
// its gathered interface and its kind. Phases that install credentials add
// them.
func (c *Cluster) inputs(node string) (nodefiles.Inputs, error) {
	f, err := c.Facts(node)
	if err != nil {
		return nodefiles.Inputs{}, err
	}
	return nodefiles.Inputs{Facts: templates.Facts{Interface: f.Interface, Container: c.Containers}}, nil
}

// files are the files phase installs on node. nodefiles decides them, for
// `lab up` exactly as for `lab render`: a phase installs its group and
// nothing else.
func (c *Cluster) files(node, phase string) ([]templates.File, error) {
	in, err := c.inputs(node)
	if err != nil {
		return nil, err
	}
	return nodefiles.ForPhase(c.Lab, c.node(node), phase, in)
}
