package main

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestPerfOverLoopback runs perf against perfAnswer on loopback: every
// byte sent is counted, and the percentiles are ordered.
func TestPerfOverLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); perfAnswer(c) }()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := perf(ctx, ln.Addr().String(), 200, 8)
	if err != nil {
		t.Fatal(err)
	}
	if r.p50 <= 0 || r.p50 > r.p90 || r.p90 > r.p99 || r.mibPerSec <= 0 {
		t.Errorf("perf over loopback: %v", r)
	}
	t.Log(r)
}
