package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/respond"
)

// lapiStream is the answer of GET /v1/decisions/stream as it was built
// whole and marshalled before writeStream.
type lapiStream struct {
	New     []lapiDecision `json:"new"`
	Deleted []lapiDecision `json:"deleted"`
}

// TestWriteStreamBytes: a pull's answer, written a decision at a time, is
// byte for byte what json.Marshal made of the whole answer.
func TestWriteStreamBytes(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	dec := func(id uint64, scenario string, ended bool) respond.DecisionInfo {
		d := respond.DecisionInfo{Decision: event.Decision{ID: id, Origin: "accessledger", Type: "ban", Scope: "Ip",
			Value: fmt.Sprintf("192.0.2.%d", id), Scenario: scenario, Until: now.Add(time.Duration(id) * time.Hour)}, UUID: "u"}
		if ended {
			d.Ended = now.Add(-time.Minute)
		}
		return d
	}
	for _, ans := range []respond.StreamAnswer{
		{Now: now},
		{Now: now, New: []respond.DecisionInfo{dec(1, "brute-force", false)}},
		{Now: now, New: []respond.DecisionInfo{dec(1, "a<b>&c\u2028", false), dec(2, "x", false)},
			Deleted: []respond.DecisionInfo{dec(3, "y", true)}},
	} {
		want, err := json.Marshal(lapiStream{New: lapiDecisions(ans.New, now), Deleted: lapiDecisions(ans.Deleted, now)})
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := writeStream(&got, ans); err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Errorf("writeStream() = %s, %v; want %s", got.Bytes(), err, want)
		}
	}
}

// slowStartups is a decision store whose startup answers take until gate
// is closed, counting how many are built at once.
type slowStartups struct {
	DecisionService
	gate      chan struct{}
	now, most atomic.Int32
}

func (s *slowStartups) Stream(ctx context.Context, b respond.Bouncer, startup bool, q respond.DecisionQuery) (respond.StreamAnswer, error) {
	if startup {
		n := s.now.Add(1)
		defer s.now.Add(-1)
		for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
		}
		<-s.gate
	}
	return respond.StreamAnswer{Now: time.Now()}, nil
}

func (s *slowStartups) Ack(context.Context, respond.Bouncer, uint64) error { return nil }

// TestStartupAnswersBounded: decision answers, a full one holding every
// active decision in memory, are built maxPulls at a time; the others wait
// their turn.
func TestStartupAnswersBounded(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	store := &slowStartups{gate: make(chan struct{})}
	s := &Server{cfg: Config{Decisions: store}, pulls: newPulls()}
	var wg sync.WaitGroup
	codes := make([]int, 2*maxPulls+1)
	for i := range codes {
		wg.Go(func() {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest(http.MethodGet, "/v1/decisions/stream?startup=true", nil)
			s.getDecisionStream(c)
			codes[i] = w.Code
		})
	}
	time.Sleep(200 * time.Millisecond)
	close(store.gate)
	wg.Wait()
	if most := store.most.Load(); most != maxPulls {
		t.Errorf("%d startup answers built at once, want %d", most, maxPulls)
	}
	for i, code := range codes {
		if code != http.StatusOK {
			t.Errorf("startup pull %d = %d, want 200 once its turn came", i, code)
		}
	}
}
