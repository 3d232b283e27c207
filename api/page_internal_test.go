package api

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/ledger/index"
)

// allSearcher matches every leaf below size.
type allSearcher struct{ size uint64 }

func (a allSearcher) Size() uint64 { return a.size }
func (a allSearcher) Search(ctx context.Context, q index.Query, from, to uint64, desc bool, fn func(uint64) bool) (uint64, error) {
	to = min(to, a.size)
	for k := from; k < to; k++ {
		i := k
		if desc {
			i = to - 1 - (k - from)
		}
		if !fn(i) {
			break
		}
	}
	return a.size, nil
}
func (a allSearcher) Count(context.Context, index.Query) (uint64, uint64, error) {
	return a.size, a.size, nil
}
func (a allSearcher) Top(context.Context, index.Query, string, int) ([]index.ValueCount, uint64, error) {
	return nil, a.size, nil
}
func (allSearcher) Behind() bool { return false }

// smallSendBuffer makes each accepted connection's send buffer small, so
// that a client that does not read stalls a write of a few hundred KiB.
type smallSendBuffer struct{ net.Listener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

// TestEventsPageDropsAStalledClient: a JSON page was written with one
// c.Data, without a deadline: a client that read nothing of it held the
// page (up to 64 MiB) and its connection for as long as it liked. It is
// now written through timedWriter, as exports are, and the client is
// dropped once a write has waited streamWriteTimeout.
func TestEventsPageDropsAStalledClient(t *testing.T) {
	defer func(d time.Duration) { streamWriteTimeout = d }(streamWriteTimeout)
	streamWriteTimeout = 200 * time.Millisecond
	l := ledgertest.New(t, ledger.Config{})
	const n = 40 // 40 entries of 60 KB: a page of 2.4 MB, more than the socket buffers hold
	for i := range n {
		data := fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("x"), 60_000))
		if _, err := l.Append(context.Background(), ledger.Entry{Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Config{Ledger: l, Index: allSearcher{size: n}})
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	ended := make(chan time.Duration, 1)
	e.GET("/page", func(c *gin.Context) {
		start := time.Now()
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				panic(v)
			}
			ended <- time.Since(start)
		}()
		s.eventsPage(c, filters{}, pageParams{limit: maxPageLimit, to: ^uint64(0)}, n)
	})
	srv := httptest.NewUnstartedServer(e)
	srv.Listener = smallSendBuffer{srv.Listener}
	srv.Start()
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	conn.Write([]byte("GET /page HTTP/1.1\r\nHost: x\r\n\r\n"))
	conn.Read(make([]byte, 1024)) // the first KB, then nothing more
	select {
	case d := <-ended:
		if d > 10*time.Second {
			t.Errorf("the page to a client that stopped reading ended after %v, want about %v", d, streamWriteTimeout)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the page to a client that stopped reading is still being written after 15s (write timeout %v)", streamWriteTimeout)
	}
}
