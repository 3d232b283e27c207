package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// TestServeBoundsConnections: connections beyond max_connections_per_ip
// from one address are closed as soon as accepted, and counted; once one
// closes, another is served. Twenty thousand idle connections without a
// key had taken every file descriptor.
func TestServeBoundsConnections(t *testing.T) {
	s := startServer(t, t.TempDir(), "--max-connections-per-ip", "3")
	s.client.CloseIdleConnections()
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	time.Sleep(100 * time.Millisecond) // accepted
	extra, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	fmt.Fprintf(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(extra), nil); err == nil {
		resp.Body.Close()
		t.Errorf("a fourth connection from one address was served (%s), want it closed", resp.Status)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("a fourth connection from one address was neither served nor closed in 10s")
	}
	// Once one of the three closes, the server has room again.
	held[0].Close()
	time.Sleep(100 * time.Millisecond)
	body := s.get("/metrics", nil)
	if !regexp.MustCompile(`(?m)^accessledger_connections_refused_total\{reason="per_ip"\} [1-9]`).Match(body) {
		t.Errorf("the refused connection is not counted in accessledger_connections_refused_total{reason=\"per_ip\"}")
	}
}
