// Package vagrantcheck holds the tests that judge the repository's top-level
// Vagrantfile: the real vagrant validates it for every lab in labs/ that uses
// the vagrant provider, and a recording stand-in for Vagrant proves that the
// VMs it defines (names, boxes, sizes, NICs, VirtualBox settings) are the
// ones provision/labfile loads from the same file, defaults included.
package vagrantcheck
