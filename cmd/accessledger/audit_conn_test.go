package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
