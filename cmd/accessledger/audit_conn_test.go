package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scriptedServer answers each request on a connection with the next of
// answers (raw HTTP/1.1 bytes); after the last it closes the connection.
// It records the requests' first lines and counts connections.
func scriptedServer(t *testing.T, answers ...string) (addr string, conns *atomic.Int64, requests chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int64)
	requests = make(chan string, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for _, a := range answers {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					requests <- req.Method + " " + req.URL.Path + " ae=" + req.Header.Get("Accept-Encoding") + " auth=" + req.Header.Get("Authorization")
					if _, err := c.Write([]byte(a)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), conns, requests
}

func testConn(addr string) *auditConn {
	u, _ := url.Parse("http://" + addr + "/log/")
	return &auditConn{t: newRawTarget(u), apiKey: "k", timeout: 5 * time.Second}
}

// TestAuditConn: the workers' HTTP/1.1 client reads bodies by length,
// chunked and up to the connection's end; reuses a kept connection,
// retries once on a new one when a kept one was closed, and fails on
// statuses, short bodies and unasked encodings.
func TestAuditConn(t *testing.T) {
	ctx := context.Background()
	ok := func(body string, fields ...string) string {
		return "HTTP/1.1 200 OK\r\n" + strings.Join(fields, "") + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	t.Run("keep-alive and retry", func(t *testing.T) {
		addr, conns, reqs := scriptedServer(t, ok("one"), ok("two", "Content-Encoding: zstd\r\n"))
		c := testConn(addr)
		defer c.close()
		var buf bytes.Buffer
		for i, want := range []string{"one", "two", "one", "two"} {
			compressed, err := c.get(ctx, "tile/0/000", &buf, true)
			if err != nil || buf.String() != want || compressed != (want == "two") {
				t.Fatalf("get %d = %q, %v, %v; want %q", i, buf.String(), compressed, err, want)
			}
		}
		// Two answers per connection: the third get found the first
		// connection closed and retried on a second.
		if got := conns.Load(); got != 2 {
			t.Errorf("%d connections, want 2", got)
		}
		if r := <-reqs; r != "GET /log/tile/0/000 ae=zstd auth=Bearer k" {
			t.Errorf("request %q", r)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		addr, _, _ := scriptedServer(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
		c := testConn(addr)
		var buf bytes.Buffer
		if _, err := c.get(ctx, "x", &buf, false); err != nil || buf.String() != "abcde" {
			t.Fatalf("get = %q, %v", buf.String(), err)
		}
		if c.conn != nil {
			t.Errorf("connection kept after a chunked answer")
		}
	})
	t.Run("until close", func(t *testing.T) {
		addr, _, _ := scriptedServer(t, "HTTP/1.0 200 OK\r\n\r\nall of it")
		c := testConn(addr)
		var buf bytes.Buffer
		if _, err := c.get(ctx, "x", &buf, false); err != nil || buf.String() != "all of it" {
			t.Fatalf("get = %q, %v", buf.String(), err)
		}
	})
	for _, tc := range []struct{ name, answer, want string }{
		{"status", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "GET http://ADDR/log/x: 404 Not Found"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "unexpected EOF after 3 of 10 bytes"},
		{"encoding", ok("x", "Content-Encoding: gzip\r\n"), `Content-Encoding "gzip", which was not asked for`},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "malformed"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed"},
		{"bad status line", "HTTP/1.1 2000 OK\r\n\r\n", "malformed"},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _, _ := scriptedServer(t, tc.answer)
			c := testConn(addr)
			var buf bytes.Buffer
			_, err := c.get(ctx, "x", &buf, false)
			if want := strings.ReplaceAll(tc.want, "ADDR", addr); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("get = %q, %v; want an error saying %q", buf.String(), err, want)
			}
			if c.conn != nil {
				t.Errorf("connection kept after a failure")
			}
		})
	}
	t.Run("canceled", func(t *testing.T) {
		// A server that never answers: canceling the context ends the
		// request.
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
				defer c.Close()
			}
		}()
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		c := testConn(ln.Addr().String())
		var buf bytes.Buffer
		if _, err := c.get(ctx, "x", &buf, false); err == nil || !strings.Contains(err.Error(), "context canceled") {
			t.Fatalf("get = %v, want context canceled", err)
		}
	})
}

// TestAuditConnPipelined: a pair of requests sent before its answers are
// read (sendPair, getPair) is answered in order on one connection by
// net/http's server; a pair other than the one sent, or a server that
// closes after the first answer, falls back to asking again.
func TestAuditConnPipelined(t *testing.T) {
	ctx := context.Background()
	var conns atomic.Int64
	var order []string
	var mu sync.Mutex
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		order = append(order, r.URL.Path)
		mu.Unlock()
		if r.Header.Get("Accept-Encoding") == "zstd" {
			w.Header().Set("Content-Encoding", "zstd")
		}
		w.Write([]byte("body of " + r.URL.Path))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := testConn(strings.TrimPrefix(srv.URL, "http://"))
	defer c.close()
	var b1, b2 bytes.Buffer
	check := func(p pair) {
		t.Helper()
		z1, z2, err := c.getPair(ctx, p, &b1, &b2)
		if err != nil || b1.String() != "body of /log/"+p.path1 || b2.String() != "body of /log/"+p.path2 || z1 != p.zstd1 || z2 != p.zstd2 {
			t.Fatalf("getPair(%+v) = %q, %q, %v, %v, %v", p, b1.String(), b2.String(), z1, z2, err)
		}
	}
	a := pair{path1: "tile/entries/000", zstd1: true, path2: "tile/0/000"}
	b := pair{path1: "tile/entries/001", zstd1: true, path2: "tile/0/001"}
	check(a) // sent and read at once
	c.sendPair(ctx, b)
	if c.sent == nil {
		t.Fatalf("sendPair did not leave the pair outstanding")
	}
	check(b) // read what was sent
	c.sendPair(ctx, a)
	check(b) // another pair was outstanding: a new connection asks for b
	if c.sent != nil {
		t.Errorf("a pair is still outstanding after getPair")
	}
	if got := conns.Load(); got != 2 {
		t.Errorf("%d connections, want 2 (one more after the mismatched pair)", got)
	}
	mu.Lock()
	got := strings.Join(order, " ")
	mu.Unlock()
	// The mismatched pair's requests may or may not reach the handler
	// before the connection closes; the rest come in order.
	for _, want := range []string{"/log/tile/entries/000 /log/tile/0/000 /log/tile/entries/001 /log/tile/0/001", "/log/tile/entries/001 /log/tile/0/001"} {
		if !strings.Contains(got, want) {
			t.Errorf("requests %q, want them to contain %q", got, want)
		}
	}

	t.Run("server closes after the first answer", func(t *testing.T) {
		// One answer per connection, without saying so: the second
		// answer of the pair never comes, and get asks again.
		addr, conns, _ := scriptedServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
		c := testConn(addr)
		defer c.close()
		var b1, b2 bytes.Buffer
		if _, _, err := c.getPair(ctx, pair{path1: "x", path2: "y"}, &b1, &b2); err != nil || b1.String() != "a" || b2.String() != "a" {
			t.Fatalf("getPair = %q, %q, %v; want a, a", b1.String(), b2.String(), err)
		}
		if got := conns.Load(); got != 2 {
			t.Errorf("%d connections, want 2", got)
		}
	})
}

// TestNewRawTarget: only plain http URLs reached without a proxy get the
// workers' own connections.
func TestNewRawTarget(t *testing.T) {
	for _, tc := range []struct {
		url          string
		addr, prefix string // empty: net/http
	}{
		{"http://127.0.0.1:18080", "127.0.0.1:18080", "/"},
		{"http://127.0.0.1:18080/a%20b/", "127.0.0.1:18080", "/a%20b/"},
		{"http://localhost/log", "localhost:80", "/log/"},
		{"http://[::1]:8080/", "[::1]:8080", "/"},
		{"https://127.0.0.1:18080/", "", ""},
		{"http://u:p@127.0.0.1/", "", ""},
		{"http://127.0.0.1/?x=1", "", ""},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		rt := newRawTarget(u)
		switch {
		case tc.addr == "" && rt != nil:
			t.Errorf("newRawTarget(%s) = %+v, want nil", tc.url, rt)
		case tc.addr != "" && (rt == nil || rt.addr != tc.addr || rt.prefix != tc.prefix):
			t.Errorf("newRawTarget(%s) = %+v, want addr %s prefix %s", tc.url, rt, tc.addr, tc.prefix)
		}
	}
}

// FuzzAuditReadAnswer: the auditor reads answers from the log it audits,
// which it does not trust, with its own HTTP/1.1 reader. No answer may
// make it panic or read more than a bundle's worth, and an encoding it
// did not ask for is refused.
func FuzzAuditReadAnswer(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\nContent-Length: 4\r\n\r\n\x28\xb5\x2f\xfd",
		"HTTP/1.0 200 OK\r\n\r\nto the end",
		"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200\r\n\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	u, err := url.Parse("http://127.0.0.1:1/log/")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, answer []byte, acceptZstd bool) {
		c := &auditConn{t: newRawTarget(u), timeout: time.Second, br: bufio.NewReaderSize(bytes.NewReader(answer), 64<<10)}
		var buf bytes.Buffer
		compressed, _, err := c.readAnswer("tile/0/000", &buf, acceptZstd)
		if err != nil {
			return
		}
		if compressed && !acceptZstd {
			t.Errorf("readAnswer(%q) = a compressed body, not asked for", answer)
		}
		if buf.Len() > maxBundleBytes {
			t.Errorf("readAnswer(%q) read %d bytes, more than %d", answer, buf.Len(), maxBundleBytes)
		}
		if buf.Len() > len(answer) {
			t.Errorf("readAnswer(%q) = a body of %d bytes, longer than the answer", answer, buf.Len())
		}
	})
}
