package bpf

// The generated datapath_bpfel.go/.o are committed so that building lab-node
// needs no clang. Regenerate with `go generate ./bpf` (clang from apt).
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" datapath datapath.c
