package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The first byte a perf client sends says what it measures.
const (
	perfRoundTrips = 'r' // echo 64-byte messages until EOF
	perfSink       = 's' // count bytes until EOF, then send the count
)

// perfMessage is the size of one round trip's message.
const perfMessage = 64

// perfServe serves perf clients until the listener fails.
func perfServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Printf("perf serving on %s", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		go func() {
			defer c.Close()
			if err := perfAnswer(c); err != nil {
				log.Printf("perf %s: %v", c.RemoteAddr(), err)
			}
		}()
	}
}

func perfAnswer(c net.Conn) error {
	// A client that stops sending for this long is gone.
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	mode := make([]byte, 1)
	if _, err := io.ReadFull(c, mode); err != nil {
		return err
	}
	switch mode[0] {
	case perfRoundTrips:
		buf := make([]byte, perfMessage)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
	case perfSink:
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c, "%d\n", n)
		return err
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// perfResult is what perf measured.
type perfResult struct {
	p50, p90, p99 time.Duration
	mibPerSec     float64
}

func (r perfResult) String() string {
	us := func(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) + "us" }
	return fmt.Sprintf("rtt p50 %s p90 %s p99 %s throughput %.0f MiB/s", us(r.p50), us(r.p90), us(r.p99), r.mibPerSec)
}

// perf times rtts round trips on one connection to target, then sends
// mib MiB on another and takes the rate at which the server received them.
func perf(ctx context.Context, target string, rtts, mib int) (perfResult, error) {
	var r perfResult
	d := net.Dialer{Resolver: &net.Resolver{PreferGo: true}}
	dial := func(mode byte) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return nil, err
		}
		if deadline, ok := ctx.Deadline(); ok {
			c.SetDeadline(deadline)
		}
		if _, err := c.Write([]byte{mode}); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}

	c, err := dial(perfRoundTrips)
	if err != nil {
		return r, err
	}
	msg := make([]byte, perfMessage)
	times := make([]time.Duration, rtts)
	for i := range times {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			c.Close()
			return r, err
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			c.Close()
			return r, err
		}
		times[i] = time.Since(start)
	}
	c.Close()
	slices.Sort(times)
	at := func(p int) time.Duration { return times[(len(times)-1)*p/100] }
	r.p50, r.p90, r.p99 = at(50), at(90), at(99)

	c, err = dial(perfSink)
	if err != nil {
		return r, err
	}
	defer c.Close()
	chunk := make([]byte, 1<<20)
	start := time.Now()
	for range mib {
		if _, err := c.Write(chunk); err != nil {
			return r, err
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return r, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return r, fmt.Errorf("the server's count: %w", err)
	}
	elapsed := time.Since(start)
	n, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil || n != int64(mib)<<20 {
		return r, fmt.Errorf("the server counted %q bytes, want %d", strings.TrimSpace(line), int64(mib)<<20)
	}
	r.mibPerSec = float64(mib) / elapsed.Seconds()
	return r, nil
}
