//go:build !linux

package docker

// On macOS and Windows the Docker daemon runs its containers in a Linux VM
// (Docker Desktop, Colima, Podman machine, ...), so the settings the nodes'
// kubelets change are the VM's, not this machine's. lab cannot reach that
// kernel's /proc/sys from here, and need not: the VM belongs to the Docker
// installation, which recreates it on restart or reset. Recording and
// restoring host settings is therefore a no-op rather than an error, so
// that container labs work from these systems too.

// DefaultSysctlRecord is empty: there is no host record to keep.
func DefaultSysctlRecord() string { return "" }

func (p *Provider) saveHostSysctls() error    { return nil }
func (p *Provider) restoreHostSysctls() error { return nil }
