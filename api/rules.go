package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/detect"
)

// detectorJSON is the detector's progress in GET /v1/rules.
type detectorJSON struct {
	Cursor     uint64     `json:"cursor"`
	Saved      uint64     `json:"saved_cursor"`
	LogSize    uint64     `json:"log_size"`
	LagLeaves  uint64     `json:"lag_leaves"`
	LagSeconds float64    `json:"lag_seconds"`
	Processed  uint64     `json:"events_processed"`
	Late       uint64     `json:"late_events"`
	Groups     int        `json:"state_groups"`
	Evicted    uint64     `json:"evicted"`
	Watermark  *time.Time `json:"watermark,omitempty"`
}

type rulesJSON struct {
	Rules    []detect.RuleStatus `json:"rules"`
	Detector detectorJSON        `json:"detector"`
}

// getRules answers the loaded rules (id, title, type, status, level,
// tags, whether they raise alerts) with their counters since the server
// started, and the detector's progress: cursor is the next leaf to
// process, saved_cursor where a restart resumes. Counters are at most
// about a second old.
func (s *Server) getRules(c *gin.Context) {
	if s.cfg.Detections == nil {
		writeError(c, http.StatusNotFound, msgNoDetection)
		return
	}
	st := s.cfg.Detections.Status()
	out := rulesJSON{Rules: st.Engine.Rules, Detector: detectorJSON{
		Cursor: st.Cursor, Saved: st.Saved, LogSize: st.LogSize, LagLeaves: st.LogSize - min(st.Cursor, st.LogSize), LagSeconds: st.LagSeconds,
		Processed: st.Engine.Processed, Late: st.Engine.Late, Groups: st.Engine.Groups, Evicted: st.Engine.Evicted,
	}}
	if out.Rules == nil {
		out.Rules = []detect.RuleStatus{}
	}
	if !st.Engine.Watermark.IsZero() {
		w := st.Engine.Watermark
		out.Detector.Watermark = &w
	}
	setCache(c, cacheLatest)
	c.JSON(http.StatusOK, out)
}
