// Package vagrantcheck holds the tests that judge lab's Vagrantfile the two
// ways it runs: fed the VM list that `lab up` writes beside it in the state
// directory (provision/provider/vagrant), and run by hand from the
// repository with LAB_FILE, where it asks a freshly built `lab vagrant-vms`
// for the list. The real vagrant validates it for every lab in labs/ that
// uses the vagrant provider, and a recording stand-in for Vagrant proves
// that the VMs it defines (names, boxes, sizes, NICs, VirtualBox settings)
// are the ones provision/labfile loads from the same file, defaults
// included.
package vagrantcheck
