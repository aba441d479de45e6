// Command dnsprobe asks one DNS server for a name's addresses and prints
// them, one a line. The cluster test runs it on a node to query CoreDNS
// through its ClusterIP (so through kube-proxy's rules and the pod network);
// the nodes have no DNS client of their own.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: dnsprobe SERVER:PORT NAME")
		os.Exit(2)
	}
	server, name := os.Args[1], os.Args[2]
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, a := range addrs {
		fmt.Println(a)
	}
}
