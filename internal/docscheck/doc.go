// Package docscheck holds the tests that keep docs/ true to the code: the
// pictures in docs/topology.md are what `lab graph` prints, and
// docs/labfile.md has a row for every lab file field and gives every
// default of provision/labfile.
package docscheck
