package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/detect"
	"github.com/accessledger/accessledger/event"
)

// Detections is what the alert and rule endpoints read, and what appends
// wait for: the server's detector (a *detect.Detector).
type Detections interface {
	Alerts(ctx context.Context, q detect.AlertQuery) (detect.AlertPage, error)
	Status() detect.Status
	// Behind reports whether appends should wait for the detector to
	// catch up (detect.Detector.Behind).
	Behind() bool
}

// msgNoDetection answers the detection endpoints of a server without a
// detector.
const msgNoDetection = "detection is off on this server (detect: {enabled: false} in its configuration)"

// alertJSON is one alert of GET /v1/alerts: where it is in the log and
// the alert, as recorded (canonical).
type alertJSON struct {
	Index      uint64          `json:"index"`
	LeafHash   string          `json:"leaf_hash"`
	ReceivedAt time.Time       `json:"received_at"`
	Alert      json.RawMessage `json:"alert"`
}

type alertsPage struct {
	Alerts []alertJSON `json:"alerts"`
	Next   *uint64     `json:"next,omitempty"`
}

// getAlerts answers the alerts the detector recorded, oldest first:
// ?since=RFC3339 (alert time), level= (that level or above), rule= (rule
// id), limit= (default 100, at most 1000), cursor= (the next of the
// previous page). With after= it answers from the respond feed instead,
// and may long-poll with wait= (getAlertFeed, api/respond.go).
// alertParams are the parameters of an alert listing.
var alertParams = []string{"since", "level", "rule", "limit", "cursor"}

func (s *Server) getAlerts(c *gin.Context) {
	if _, ok := c.GetQuery("after"); ok {
		s.getAlertFeed(c)
		return
	}
	if _, ok := c.GetQuery("wait"); ok {
		writeError(c, http.StatusBadRequest, "wait needs after=N: only the respond feed (GET /v1/alerts?after=N&wait=30s) can be long-polled")
		return
	}
	if s.cfg.Detections == nil {
		writeError(c, http.StatusNotFound, msgNoDetection)
		return
	}
	// As the event queries do, refuse what would widen the answer
	// silently: a misspelt filter, or a filter given twice.
	if !checkParams(c, alertParams, "takes "+strings.Join(alertParams, ", ")+" (or after and wait, for the respond feed)") {
		return
	}
	var q detect.AlertQuery
	if v := c.Query("since"); v != "" {
		t, err := event.ParseTime(v) // as the event queries and event times
		if err != nil {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("since must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q%s", truncate(v, 40), plusHint(v)))
			return
		}
		q.Since = t
	}
	q.Level = c.Query("level")
	q.Rule = c.Query("rule")
	if v := c.Query("limit"); v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n < 1 || n > 1000 {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to 1000, got %q", truncate(v, 32)))
			return
		}
		q.Limit = int(n)
	}
	if v := c.Query("cursor"); v != "" {
		n, ok := parseUint(c, "cursor", v)
		if !ok {
			return
		}
		q.Cursor = n
	}
	page, err := s.cfg.Detections.Alerts(c, q)
	if errors.Is(err, detect.ErrBadQuery) {
		// The message says what is wrong; the sentinel's text is the
		// detector's, not the caller's.
		writeError(c, http.StatusBadRequest, strings.TrimSuffix(err.Error(), ": "+detect.ErrBadQuery.Error()))
		return
	}
	if err != nil {
		s.fail(c, err, "")
		return
	}
	out := alertsPage{Alerts: make([]alertJSON, 0, len(page.Alerts))}
	for _, a := range page.Alerts {
		out.Alerts = append(out.Alerts, alertJSON{Index: a.Index, LeafHash: b64(a.LeafHash), ReceivedAt: a.ReceivedAt.UTC(), Alert: a.Alert.Canonical()})
	}
	if page.Next != 0 {
		out.Next = &page.Next
	}
	if len(out.Alerts) == 0 {
		nothingRead(c)
	}
	setCache(c, cacheLatest)
	c.JSON(http.StatusOK, out)
}
