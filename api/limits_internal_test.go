package api

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// TestTimedWriterDropsAStalledClient: an export to a client that stopped
// reading held its read-ahead and workers for ever; each write now has a
// deadline, through gin's writer.
func TestTimedWriterDropsAStalledClient(t *testing.T) {
	defer func(d time.Duration) { streamWriteTimeout = d }(streamWriteTimeout)
	streamWriteTimeout = 200 * time.Millisecond
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	failed := make(chan time.Duration, 1)
	e.GET("/export", func(c *gin.Context) {
		c.Status(http.StatusOK)
		tw := newTimedWriter(c)
		defer tw.end()
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		var last time.Time
		for range 100_000 { // 6.5 GB: more than any socket buffers
			last = time.Now()
			if _, err := tw.Write(chunk); err != nil {
				failed <- time.Since(last)
				return
			}
		}
		failed <- -1
	})
	srv := httptest.NewServer(e)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET /export HTTP/1.1\r\nHost: x\r\n\r\n")) // and never read
	select {
	case d := <-failed:
		if d < 0 || d > 10*time.Second {
			t.Errorf("the write to a client that stopped reading failed after %v, want about %v", d, streamWriteTimeout)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the export to a client that stopped reading still runs after 30s")
	}
}

// TestSlotsBound: answers that last are bounded per key and in all, each
// refusal a 503 naming the bound.
func TestSlotsBound(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	s := newSlots("exports", 3, 2)
	ctx := func(key string) (*gin.Context, *httptest.ResponseRecorder) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Set(ctxKeyName, key)
		return c, w
	}
	a1, _ := ctx("a")
	a2, _ := ctx("a")
	if !s.take(a1) || !s.take(a2) {
		t.Fatal("two exports of key a refused")
	}
	a3, w := ctx("a")
	if s.take(a3) || w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !bytes.Contains(w.Body.Bytes(), []byte(`API key \"a\" has 2 exports`)) {
		t.Errorf("a third export of key a = %d %s, want 503 naming the key's bound", w.Code, w.Body)
	}
	b1, _ := ctx("b")
	if !s.take(b1) {
		t.Fatal("key b's first export refused")
	}
	b2, w := ctx("b")
	if s.take(b2) || w.Code != http.StatusServiceUnavailable || !bytes.Contains(w.Body.Bytes(), []byte("the server has 3 exports")) {
		t.Errorf("a fourth export = %d %s, want 503 naming the server's bound", w.Code, w.Body)
	}
	s.done(a1)
	if b3, _ := ctx("b"); !s.take(b3) {
		t.Errorf("an export after one ended refused")
	}
}
