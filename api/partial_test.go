package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// partialAnswer mirrors the answer to a partially accepted batch.
type partialAnswer struct {
	Results []struct {
		Index     *uint64 `json:"index"`
		LeafHash  string  `json:"leaf_hash"`
		Duplicate bool    `json:"duplicate"`
		Status    int     `json:"status"`
		Errors    []struct {
			Index  int    `json:"index"`
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"errors"`
	} `json:"results"`
	Rejected int `json:"rejected"`
}

func TestPostPartialAcceptance(t *testing.T) {
	ts := newTestServer(t)
	post := func(query string, body []byte) response {
		t.Helper()
		return call(t, ts.srv.URL, http.MethodPost, "/v1/events"+query, ts.submitter(), "application/json", body)
	}
	badIP := edit(event(2), "source.ip", "not-an-ip")

	// Without partial acceptance the batch is rejected whole.
	before := size(ts.l)
	r := post("", batchJSON(eventJSON(t, 1), mustJSON(t, badIP), eventJSON(t, 3)))
	wantError(t, "POST batch with a bad event", r, http.StatusBadRequest)
	if got := size(ts.l); got != before {
		t.Fatalf("size after a rejected batch = %d, want %d", got, before)
	}

	// With it, the valid events are appended, in order, and the bad one
	// is reported at its position.
	r = post("?partial=true", batchJSON(eventJSON(t, 1), mustJSON(t, badIP), eventJSON(t, 3)))
	if r.status != http.StatusCreated {
		t.Fatalf("POST ?partial=true = %v, want 201", r)
	}
	var ans partialAnswer
	decodeStrict(t, "partial answer", r.body, &ans)
	if len(ans.Results) != 3 || ans.Rejected != 1 {
		t.Fatalf("partial answer = %s, want 3 results and rejected 1", r.body)
	}
	if ans.Results[0].Index == nil || *ans.Results[0].Index != before || ans.Results[2].Index == nil || *ans.Results[2].Index != before+1 {
		t.Errorf("partial answer = %s, want events 0 and 2 at %d and %d", r.body, before, before+1)
	}
	if ans.Results[1].Index != nil || ans.Results[1].Status != 400 || len(ans.Results[1].Errors) != 1 || ans.Results[1].Errors[0].Field != "source.ip" || ans.Results[1].Errors[0].Index != 1 {
		t.Errorf("partial answer = %s, want event 1 rejected (400) on source.ip", r.body)
	}
	if got := size(ts.l); got != before+2 {
		t.Errorf("size after partial acceptance = %d, want %d", got, before+2)
	}
	for _, k := range []int{0, 2} {
		e := ts.getEntry(t, *ans.Results[k].Index)
		if got := leafHash(e.Entry); b64(got[:]) != ans.Results[k].LeafHash {
			t.Errorf("entry %d hashes to %s, answer says %s", *ans.Results[k].Index, b64(got[:]), ans.Results[k].LeafHash)
		}
	}

	// An id conflict under partial acceptance rejects only that event.
	r = post("", withID(t, 10, "evt-p"))
	if r.status != http.StatusCreated {
		t.Fatalf("POST evt-p = %v", r)
	}
	before = size(ts.l)
	r = post("?partial=1", batchJSON(withID(t, 11, "evt-p"), eventJSON(t, 12)))
	if r.status != http.StatusCreated {
		t.Fatalf("POST ?partial=1 with a conflicting id = %v, want 201", r)
	}
	ans = partialAnswer{}
	decodeStrict(t, "partial answer", r.body, &ans)
	// Its status says a conflict, as the 409 of a request of it alone:
	// RejectedError.Status was 400 for every refusal.
	if ans.Rejected != 1 || ans.Results[0].Status != 409 || len(ans.Results[0].Errors) != 1 || ans.Results[0].Errors[0].Field != "id" || ans.Results[1].Index == nil {
		t.Errorf("partial answer with a conflict = %s, want event 0 rejected (409) on id and event 1 appended", r.body)
	}
	if got := size(ts.l); got != before+1 {
		t.Errorf("size after partial acceptance with a conflict = %d, want %d", got, before+1)
	}

	// Every event invalid: 400 and nothing written; a bad flag value: 400.
	before = size(ts.l)
	r = post("?partial=true", batchJSON(mustJSON(t, badIP), mustJSON(t, badIP)))
	wantError(t, "POST ?partial=true with only bad events", r, http.StatusBadRequest)
	r = post("?partial=maybe", batchJSON(eventJSON(t, 1)))
	wantError(t, "POST ?partial=maybe", r, http.StatusBadRequest)
	if got := size(ts.l); got != before {
		t.Errorf("size after rejected requests = %d, want %d", got, before)
	}
	var probe map[string]any
	if err := json.Unmarshal(r.body, &probe); err != nil {
		t.Errorf("error body %q is not JSON", r.body)
	}
}
