package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// rawTarget is where a --full worker sends its requests on its own
// HTTP/1.1 connection: a plain http:// log URL reached without a proxy.
// For anything else (https, a proxy, a URL with user info or a query) the
// workers use the auditor's http.Client.
type rawTarget struct {
	addr   string // host:port to dial
	host   string // the Host header
	prefix string // the escaped path of the log's URL, ending in "/"
}

// newRawTarget returns the raw target for the log's URL u, or nil if the
// workers must use net/http.
func newRawTarget(u *url.URL) *rawTarget {
	if u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Host == "" {
		return nil
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || p != nil {
		return nil
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	prefix := u.EscapedPath()
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &rawTarget{addr: net.JoinHostPort(u.Hostname(), port), host: u.Host, prefix: prefix}
}

// auditConn is one --full worker's keep-alive HTTP/1.1 connection. Each
// request is written in one write and its answer read on the worker's
// goroutine, keeping only the header fields that say how to read the body
// (length, chunked, encoding, close): none of http.Transport's
// per-connection goroutines, hand-offs and pool locking, nor
// http.ReadResponse's header map, which cost the auditor a fifth of its
// CPU. One request at a time, or a pipelined pair of them (sendPair,
// getPair); owned by its worker goroutine.
type auditConn struct {
	t       *rawTarget
	apiKey  string
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
	stop    func() bool // unregisters the cancellation of conn
	req     []byte
	sent    *pair // sent by sendPair, not yet read
}

// aLongTimeAgo is a deadline that makes blocked reads and writes return.
var aLongTimeAgo = time.Unix(1, 0)

func (c *auditConn) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", c.t.addr)
	if err != nil {
		return err
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 64<<10)
	} else {
		c.br.Reset(conn)
	}
	c.stop = context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	return nil
}

// close closes the connection, if any; the next request dials anew.
func (c *auditConn) close() {
	if c.conn != nil {
		c.stop()
		c.conn.Close()
		c.conn = nil
	}
	c.sent = nil
}

// get reads path below the log's URL into buf, as auditor.get does. A
// request that fails on a connection that served earlier ones (the server
// may have closed it meanwhile) is retried once on a new connection: it is
// a GET.
func (c *auditConn) get(ctx context.Context, path string, buf *bytes.Buffer, acceptZstd bool) (compressed bool, err error) {
	for attempt := 0; ; attempt++ {
		reused := c.conn != nil
		if !reused {
			if err := c.dial(ctx); err != nil {
				return false, fmt.Errorf("GET %s: %w", path, err)
			}
		}
		var early bool
		compressed, early, err = c.roundTrip(path, buf, acceptZstd)
		if err == nil {
			return compressed, nil
		}
		c.close()
		if cerr := ctx.Err(); cerr != nil {
			return false, fmt.Errorf("GET %s: %w", path, cerr)
		}
		if !early || !reused || attempt > 0 {
			return false, err
		}
	}
}

// roundTrip sends one request and reads its answer. early reports a
// failure before the answer's status line was read. The connection stays
// open only if the answer was read to its end and the server keeps it.
func (c *auditConn) roundTrip(path string, buf *bytes.Buffer, acceptZstd bool) (compressed, early bool, err error) {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return false, true, fmt.Errorf("GET %s: %w", c.url(path), err)
	}
	c.req = c.appendRequest(c.req[:0], path, acceptZstd)
	if _, err := c.conn.Write(c.req); err != nil {
		return false, true, fmt.Errorf("GET %s: %w", c.url(path), err)
	}
	return c.readAnswer(path, buf, acceptZstd)
}

// pair is a pipelined pair of requests sent and not yet answered.
type pair struct {
	path1, path2 string
	zstd1, zstd2 bool
}

// sendPair sends GET requests for two paths in one write without reading
// the answers (HTTP/1.1 pipelining, RFC 9112 section 9.3.2): the server
// answers them while the worker is busy with the bundle before, and
// getPair for the same paths reads the answers. It does nothing if a pair
// is already outstanding; on failure nothing is outstanding and getPair
// asks again.
func (c *auditConn) sendPair(ctx context.Context, p pair) {
	if c.sent != nil {
		return
	}
	if c.conn == nil {
		if err := c.dial(ctx); err != nil {
			return
		}
	}
	c.req = c.appendRequest(c.req[:0], p.path1, p.zstd1)
	c.req = c.appendRequest(c.req, p.path2, p.zstd2)
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		c.close()
		return
	}
	if _, err := c.conn.Write(c.req); err != nil {
		c.close()
		return
	}
	c.sent = &p
}

// getPair reads two paths below the log's URL into buf1 and buf2, as get
// does: the answers to a pair sendPair sent, or else to a pair it sends
// now, so that each side wakes once for the pair. Whatever the pipelined
// attempt does not complete (the server closed after the first answer,
// or a failure) is asked again with get.
func (c *auditConn) getPair(ctx context.Context, p pair, buf1, buf2 *bytes.Buffer) (compressed1, compressed2 bool, err error) {
	if c.sent != nil && *c.sent != p {
		c.close() // answers to other requests are on their way
	}
	c.sendPair(ctx, p)
	done1 := false
	if c.sent != nil {
		c.sent = nil
		if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err == nil {
			var err1 error
			compressed1, _, err1 = c.readAnswer(p.path1, buf1, p.zstd1)
			done1 = err1 == nil
			if done1 && c.conn != nil {
				var err2 error
				if compressed2, _, err2 = c.readAnswer(p.path2, buf2, p.zstd2); err2 == nil {
					return compressed1, compressed2, nil
				}
			}
		}
		c.close()
		if cerr := ctx.Err(); cerr != nil {
			return false, false, fmt.Errorf("GET %s: %w", c.url(p.path1), cerr)
		}
	}
	if !done1 {
		if compressed1, err = c.get(ctx, p.path1, buf1, p.zstd1); err != nil {
			return false, false, err
		}
	}
	compressed2, err = c.get(ctx, p.path2, buf2, p.zstd2)
	return compressed1, compressed2, err
}

// appendRequest appends a GET of path to r.
func (c *auditConn) appendRequest(r []byte, path string, acceptZstd bool) []byte {
	r = append(r, "GET "...)
	r = append(r, c.t.prefix...)
	r = append(r, path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, c.t.host...)
	r = append(r, "\r\nUser-Agent: accessledger-audit\r\n"...)
	if c.apiKey != "" {
		r = append(r, "Authorization: Bearer "...)
		r = append(r, c.apiKey...)
		r = append(r, "\r\n"...)
	}
	if acceptZstd {
		r = append(r, "Accept-Encoding: zstd\r\n"...)
	}
	return append(r, "\r\n"...)
}

// readAnswer reads the answer to a request for path into buf; early and
// the connection's fate are as for roundTrip.
func (c *auditConn) readAnswer(path string, buf *bytes.Buffer, acceptZstd bool) (compressed, early bool, err error) {
	h, err := c.readHead()
	if err != nil {
		return false, h.status == "", fmt.Errorf("GET %s: %w", c.url(path), err)
	}
	// On any failure the rest of the answer is abandoned with the
	// connection.
	if h.code != http.StatusOK {
		return false, false, fmt.Errorf("GET %s: %s", c.url(path), h.status)
	}
	switch ce := h.encoding; {
	case ce == "" || strings.EqualFold(ce, "identity"):
	case acceptZstd && strings.EqualFold(ce, "zstd"):
		compressed = true
	default:
		return false, false, fmt.Errorf("GET %s: Content-Encoding %q, which was not asked for", c.url(path), ce)
	}
	var body io.Reader = c.br
	switch {
	case h.chunked:
		// The trailer after the last chunk is left unread: the
		// connection is not reused.
		body, h.close = httputil.NewChunkedReader(c.br), true
	case h.length >= 0:
		body = io.LimitReader(c.br, h.length)
	default:
		h.close = true // the body ends with the connection
	}
	buf.Reset()
	if h.length > 0 && h.length <= maxBundleBytes {
		buf.Grow(int(h.length) + bytes.MinRead)
	}
	m, err := buf.ReadFrom(io.LimitReader(body, maxBundleBytes+1))
	if err != nil {
		return false, false, fmt.Errorf("GET %s: %w", c.url(path), err)
	}
	if m > maxBundleBytes {
		return false, false, fmt.Errorf("GET %s: larger than %d bytes", c.url(path), maxBundleBytes)
	}
	if h.length >= 0 && m != h.length {
		return false, false, fmt.Errorf("GET %s: %w after %d of %d bytes", c.url(path), io.ErrUnexpectedEOF, m, h.length)
	}
	if h.close {
		c.close()
	}
	return compressed, false, nil
}

func (c *auditConn) url(path string) string { return "http://" + c.t.host + c.t.prefix + path }

// respHead is what the auditor needs of an answer's header.
type respHead struct {
	status   string // the status line after the version, e.g. "200 OK"
	code     int
	length   int64  // Content-Length, -1 if not given
	encoding string // Content-Encoding
	chunked  bool
	close    bool // the server closes the connection after the answer
}

var errMalformedHead = errors.New("malformed HTTP/1.1 response header")

// readHead reads an answer's status line and header fields (RFC 9112),
// keeping those that say how to read the body. status is empty if no
// status line was read.
func (c *auditConn) readHead() (h respHead, err error) {
	line, err := c.line()
	if err != nil {
		return h, err
	}
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return h, fmt.Errorf("%w: status line %q", errMalformedHead, line)
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return h, fmt.Errorf("%w: status line %q", errMalformedHead, line)
		}
		h.code = 10*h.code + int(d-'0')
	}
	if h.code == http.StatusOK {
		h.status = "200 OK"
	} else {
		h.status = string(line[9:])
	}
	h.length, h.close = -1, line[7] == '0' // HTTP/1.0 closes by default
	for {
		if line, err = c.line(); err != nil {
			return h, err
		}
		if len(line) == 0 {
			return h, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || name[len(name)-1] == ' ' || name[0] == ' ' || name[0] == '\t' {
			return h, fmt.Errorf("%w: field %q", errMalformedHead, line)
		}
		value = bytes.Trim(value, " \t")
		switch {
		case strings.EqualFold(string(name), "Content-Length"):
			n, ok := parseLength(value)
			if !ok || h.length >= 0 && n != h.length {
				return h, fmt.Errorf("%w: Content-Length %q", errMalformedHead, value)
			}
			h.length = n
		case strings.EqualFold(string(name), "Content-Encoding"):
			if h.encoding != "" {
				h.encoding += ", "
			}
			h.encoding += string(value)
		case strings.EqualFold(string(name), "Transfer-Encoding"):
			if !strings.EqualFold(string(value), "chunked") || h.chunked {
				return h, fmt.Errorf("%w: Transfer-Encoding %q", errMalformedHead, value)
			}
			h.chunked = true
		case strings.EqualFold(string(name), "Connection"):
			for tok := range strings.SplitSeq(string(value), ",") {
				if strings.EqualFold(strings.TrimSpace(tok), "close") {
					h.close = true
				}
			}
		}
	}
}

// line reads a header line without its line ending.
func (c *auditConn) line() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: a line longer than %d bytes", errMalformedHead, c.br.Size())
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = 10*n + int64(d-'0')
	}
	return n, true
}
