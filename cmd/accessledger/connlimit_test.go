package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
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
	held := holdConnections(t, s.addr, 3)
	// Once one of the three closes, the server has room again (once it
	// has seen it closed).
	held[0].Close()
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		status, b, err := s.do(t.Context(), http.MethodGet, "/metrics", "", nil)
		if err == nil && status == http.StatusOK {
			body = b
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /metrics after one of the three closed = %d, %v", status, err)
		}
	}
	if !regexp.MustCompile(`(?m)^accessledger_connections_refused_total\{reason="per_ip"\} [1-9]`).Match(body) {
		t.Errorf("the refused connection is not counted in accessledger_connections_refused_total{reason=\"per_ip\"}")
	}
	if !regexp.MustCompile(`(?m)^accessledger_connections_refused_total\{reason="total"\} 0$`).Match(body) {
		t.Errorf("accessledger_connections_refused_total{reason=\"total\"} is not at 0 before the first such refusal")
	}
}

// healthz sends GET /healthz on c and reads the answer: nil if it is 200.
func healthz(c net.Conn) error {
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	return nil
}

// TestLimitedConnHalfCloses: net/http half-closes a connection after an
// answer given before the body was read; the limit's wrapper hid the
// method, and a client still sending saw a reset instead of the answer.
func TestLimitedConnHalfCloses(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll := newLimitListener(lis, 10, 10, nil)
	defer ll.Close()
	go func() {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite", c)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Errorf("CloseWrite() = %v", err)
	}
}

// TestPerIPKey: max_connections_per_ip counts an IPv6 /64 as one address
// (a host picks any address of its /64: counted by address, one client
// could open the bound's worth of connections from each of them), and an
// IPv4 address, mapped or not, as itself.
func TestPerIPKey(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"},
		{"2001:db8:1:2::1", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::2"},
		{"192.0.2.1", "::ffff:192.0.2.1"},
	} {
		if ka, kb := perIPKey(netip.MustParseAddr(tc.a)), perIPKey(netip.MustParseAddr(tc.b)); ka != kb {
			t.Errorf("perIPKey(%s) = %s, perIPKey(%s) = %s: want one key", tc.a, ka, tc.b, kb)
		}
	}
	for _, tc := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"192.0.2.1", "192.0.2.2"},
		{"::ffff:192.0.2.1", "::ffff:192.0.2.2"},
	} {
		if ka, kb := perIPKey(netip.MustParseAddr(tc.a)), perIPKey(netip.MustParseAddr(tc.b)); ka == kb {
			t.Errorf("perIPKey(%s) = perIPKey(%s) = %s: want two keys", tc.a, tc.b, ka)
		}
	}
}

// TestWitnessBoundsConnections: the witness bounds connections as serve
// does. Two local clients holding idle connections had taken its 20,000
// file descriptors ("accept: too many open files"), and add-checkpoint
// timed out. Beyond --max-connections-per-ip from one address, a
// connection is closed as soon as accepted; another address is served.
func TestWitnessBoundsConnections(t *testing.T) {
	lg := newNoteLog(t, "log.example/conns")
	policy := writeFile(t, filepath.Join(t.TempDir(), "policy"), "log "+lg.vkey+"\nquorum none\n")
	w := startWitness(t, filepath.Join(t.TempDir(), "w"), policy, "--name", "witness.example/conns",
		"--max-connections-per-ip", "3", "--public-metrics")
	// Another loopback address (Linux answers all of 127/8).
	other := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}}
	defer other.CloseIdleConnections()
	if resp, err := other.Get(w.base + "/healthz"); err != nil {
		t.Skipf("cannot connect from 127.0.0.2: %v", err)
	} else {
		resp.Body.Close()
	}

	holdConnections(t, w.addr, 3) // from 127.0.0.1

	// From another address, add-checkpoint is served, and the refusal
	// counted.
	resp, err := other.Post(w.base+"/add-checkpoint", "", strings.NewReader("old 0\n\n"+string(lg.checkpoint(t, 3))))
	if err != nil {
		t.Fatalf("POST /add-checkpoint from 127.0.0.2: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /add-checkpoint from 127.0.0.2 = %d %q, want 200", resp.StatusCode, body)
	}
	if resp, err = other.Get(w.base + "/metrics"); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^accessledger_connections_refused_total\{reason="per_ip"\} [1-9]`).Match(body) {
		t.Errorf("the refused connection is not counted in accessledger_connections_refused_total{reason=\"per_ip\"}")
	}
}

// holdConnections opens n connections to addr (a server whose
// max_connections_per_ip is n), each served once and kept open until the
// test ends, and checks that one more from the same address is closed
// unserved. (One may be refused while the server has yet to see the
// client's earlier connections closed: it is dialled again.)
func holdConnections(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var held []net.Conn
	for tries := 0; len(held) < n; tries++ {
		if tries == 20 {
			t.Fatalf("only %d connections served in 20 tries", len(held))
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if healthz(c) != nil {
			c.Close()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		t.Cleanup(func() { c.Close() })
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if err := healthz(extra); err == nil {
		t.Errorf("connection %d from one address was served, want it closed", n+1)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("connection %d from one address was neither served nor closed in 10s", n+1)
	}
	return held
}
