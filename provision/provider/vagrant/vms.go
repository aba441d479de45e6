package vagrant

import (
	"encoding/json"
	"fmt"
	"net"

	"github.com/labctl/lab/provision/labfile"
)

// VMListFormat is the version of the VM list's layout. The Vagrantfile
// refuses a list of another format, which happens when the Vagrantfile of
// one lab release meets the lab binary of another.
const VMListFormat = 1

// VMListFile is the name of the VM list beside the Vagrantfile in a lab's
// state directory. The Vagrantfile reads a list of that name beside itself
// before it would ask `lab vagrant-vms` for one.
const VMListFile = "vagrant-vms.json"

// Vagrant providers a VM list can name. Only VirtualBox is configured today.
const (
	ProviderVirtualBox = "virtualbox"
)

// VMList is what lab hands the Vagrantfile: every VM of one lab, with every
// default of provision/labfile already applied, so the Vagrantfile decides
// nothing and only applies it. Provider selects which per-VM provider
// section (VM.VirtualBox today) the Vagrantfile configures and which
// provider `vagrant up` uses.
type VMList struct {
	Format   int    `json:"format"`
	Lab      string `json:"lab"`
	Provider string `json:"provider"`
	VMs      []VM   `json:"vms"`
}

// VM is one Vagrant machine, named after its node.
type VM struct {
	Name       string `json:"name"`
	Hostname   string `json:"hostname"`
	Box        string `json:"box"`
	BoxVersion string `json:"box_version,omitempty"`
	CPUs       int    `json:"cpus"`
	// Memory is in MiB.
	Memory int `json:"memory"`
	// NICs are the node's addresses on the lab's networks, node network
	// first, each a private network. They follow the provider's own NIC
	// (NAT for VirtualBox), which Vagrant keeps for SSH.
	NICs       []NIC       `json:"nics"`
	VirtualBox *VirtualBox `json:"virtualbox,omitempty"`
}

// NIC is one private-network interface of a VM.
type NIC struct {
	Network string `json:"network"`
	IP      string `json:"ip"`
	Netmask string `json:"netmask"`
}

// VirtualBox holds what only the VirtualBox provider understands.
type VirtualBox struct {
	// Name is the VirtualBox VM name, <lab>-<node>, unique across labs.
	Name        string `json:"name"`
	LinkedClone bool   `json:"linked_clone"`
	// CheckGuestAdditions is off: lab needs nothing from them, and the
	// check costs time at every boot.
	CheckGuestAdditions bool `json:"check_guest_additions"`
	// ModifyVM are the arguments of each `VBoxManage modifyvm <vm> ...`
	// run after the VM is made.
	ModifyVM [][]string `json:"modifyvm"`
}

// NewVMList resolves lab l, loaded by provision/labfile, into its VMs.
func NewVMList(l *labfile.Lab) (*VMList, error) {
	src := l.Path
	if src == "" {
		src = "lab " + l.Metadata.Name
	}
	if l.Provider.Type != labfile.ProviderVagrant || l.Provider.Vagrant == nil {
		return nil, fmt.Errorf("%s: provider.type is %s, not vagrant: use `lab up %s` instead", src, l.Provider.Type, src)
	}
	if len(l.Nodes) == 0 {
		return nil, fmt.Errorf("%s: the lab has no nodes", src)
	}
	v := l.Provider.Vagrant

	// The node network becomes the first private network, the others
	// follow in file order, so eth1 carries Kubernetes on every VM.
	var nets []*labfile.Network
	if nn := l.NodeNetworkDef(); nn != nil {
		nets = append(nets, nn)
	}
	for i := range l.Networks {
		if l.Networks[i].Name != l.Kubernetes.NodeNetwork {
			nets = append(nets, &l.Networks[i])
		}
	}

	list := &VMList{Format: VMListFormat, Lab: l.Metadata.Name, Provider: ProviderVirtualBox}
	for i := range l.Nodes {
		n := &l.Nodes[i]
		vm := VM{
			Name: n.Name, Hostname: n.Name,
			Box: v.Box, BoxVersion: v.BoxVersion,
			CPUs: n.CPUs, Memory: n.Memory,
		}
		for _, nw := range nets {
			addr, ok := n.Addresses[nw.Name]
			if !ok {
				continue
			}
			p := nw.Prefix()
			if !p.IsValid() || !p.Addr().Is4() {
				return nil, fmt.Errorf("%s: network %s: %q is not an IPv4 CIDR (run `lab validate %s`)", src, nw.Name, nw.CIDR, src)
			}
			mask := net.IP(net.CIDRMask(p.Bits(), 32)).String()
			vm.NICs = append(vm.NICs, NIC{Network: nw.Name, IP: addr, Netmask: mask})
		}
		if len(vm.NICs) == 0 {
			return nil, fmt.Errorf("%s: node %s has no address on the lab's networks: give it one under addresses", src, n.Name)
		}
		vm.VirtualBox = virtualBox(l, n, len(vm.NICs))
		list.VMs = append(list.VMs, vm)
	}
	return list, nil
}

// virtualBox is node n's VirtualBox section; it has nics private networks.
func virtualBox(l *labfile.Lab, n *labfile.Node, nics int) *VirtualBox {
	v := l.Provider.Vagrant
	vb := &VirtualBox{
		Name:        l.Metadata.Name + "-" + n.Name,
		LinkedClone: v.LinkedCloneEnabled(),
	}
	if v.Group != "" {
		vb.ModifyVM = append(vb.ModifyVM, []string{"--groups", v.Group})
	}
	vb.ModifyVM = append(vb.ModifyVM, []string{"--nestedpaging", "on"})
	// Promiscuous host-only NICs, as the study labs have: a VM may then
	// receive frames for MAC addresses other than its own (bridges,
	// macvlan, captures of other nodes' traffic). NIC 1 is Vagrant's NAT,
	// so the private networks are NIC 2, 3, ...
	for i := range nics {
		vb.ModifyVM = append(vb.ModifyVM, []string{fmt.Sprintf("--nicpromisc%d", i+2), "allow-all"})
	}
	return vb
}

// JSON is the list as the Vagrantfile reads it, indented for people who
// open the file in the state directory.
func (vl *VMList) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(vl, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("vagrant: encoding the VM list of lab %s: %w", vl.Lab, err)
	}
	return append(b, '\n'), nil
}
