// Command netcheck proves that a pod network carries TCP. The cluster test
// packs it, built static, into an image FROM scratch and runs it in pods:
//
//	netcheck serve [-addr :8080]
//	netcheck get [-timeout 5s] HOST:PORT...
//	netcheck perf-serve [-addr :9000]
//	netcheck perf [-rtt 2000] [-mib 256] [-timeout 2m] HOST:PORT
//
// serve answers every connection with its host name (in a pod: the pod's
// name) and a newline, then closes it, logging whom it answered. get
// connects to each HOST:PORT in turn, resolving names with Go's own
// resolver through /etc/resolv.conf (the pod's cluster DNS), and prints
// one line per target, "HOST:PORT NAME" or "HOST:PORT error: ...", so that
// the test can tell which pod answered which address. get exits 1 when any
// target failed, 2 on bad usage. Every target has its own deadline, so a
// black-holed packet fails the check instead of hanging it.
//
// perf measures what a path between two pods costs, against perf-serve:
// the round trip of a 64-byte message, -rtt times on one connection
// (percentiles), and the rate of -mib MiB sent on another. It prints one
// line, "rtt p50 Xus p90 Xus p99 Xus throughput X MiB/s", for figures,
// never for assertions.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ExitOnError)
		addr := fs.String("addr", ":8080", "TCP address to listen on")
		fs.Parse(os.Args[2:])
		if err := serve(*addr); err != nil {
			log.Fatal(err)
		}
	case "get":
		fs := flag.NewFlagSet("get", flag.ExitOnError)
		timeout := fs.Duration("timeout", 5*time.Second, "deadline of each target: resolve, connect and read")
		fs.Parse(os.Args[2:])
		if fs.NArg() == 0 {
			usage()
		}
		failed := false
		for _, target := range fs.Args() {
			name, err := get(target, *timeout)
			if err != nil {
				failed = true
				fmt.Printf("%s error: %v\n", target, err)
				continue
			}
			fmt.Printf("%s %s\n", target, name)
		}
		if failed {
			os.Exit(1)
		}
	case "perf-serve":
		fs := flag.NewFlagSet("perf-serve", flag.ExitOnError)
		addr := fs.String("addr", ":9000", "TCP address to listen on")
		fs.Parse(os.Args[2:])
		if err := perfServe(*addr); err != nil {
			log.Fatal(err)
		}
	case "perf":
		fs := flag.NewFlagSet("perf", flag.ExitOnError)
		rtts := fs.Int("rtt", 2000, "round trips to time")
		mib := fs.Int("mib", 256, "MiB to send for the throughput")
		timeout := fs.Duration("timeout", 2*time.Minute, "deadline of the whole measurement")
		fs.Parse(os.Args[2:])
		if fs.NArg() != 1 || *rtts < 1 || *mib < 1 {
			usage()
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		r, err := perf(ctx, fs.Arg(0), *rtts, *mib)
		if err != nil {
			fmt.Printf("%s error: %v\n", fs.Arg(0), err)
			os.Exit(1)
		}
		fmt.Println(r)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: netcheck serve [-addr :8080] | netcheck get [-timeout 5s] HOST:PORT... |\n"+
		"       netcheck perf-serve [-addr :9000] | netcheck perf [-rtt 2000] [-mib 256] [-timeout 2m] HOST:PORT")
	os.Exit(2)
}

// serve answers each connection with the host name. The name is read once:
// in a pod it is the pod's name, which is what the test expects back.
func serve(addr string) error {
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("host name: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Printf("%s serving on %s", host, ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		go answer(c, host)
	}
}

func answer(c net.Conn, host string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, host+"\n"); err != nil {
		log.Printf("answer %s: %v", c.RemoteAddr(), err)
		return
	}
	log.Printf("answered %s (local %s)", c.RemoteAddr(), c.LocalAddr())
}

// get connects to target and returns the first line the server sent.
func get(target string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// PreferGo: the pure Go resolver reads the pod's /etc/resolv.conf
	// (search domains, ndots) itself; the image has no libc anyway.
	d := net.Dialer{Resolver: &net.Resolver{PreferGo: true}}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	if err := c.SetDeadline(deadline); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read from %s: %w", c.RemoteAddr(), err)
	}
	name := strings.TrimSpace(line)
	if name == "" {
		return "", fmt.Errorf("%s sent no name", c.RemoteAddr())
	}
	return name, nil
}
