package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/store"
)

// storeOps are the dlq operations straight on the store (the daemon replays through its
// dispatcher; here nothing delivers).
type storeOps struct{ *store.Bolt }

// pagesServer serves the console, without auth, over a real bbolt store.
func pagesServer(t testing.TB) (*httptest.Server, *store.Bolt) {
	t.Helper()
	return pagesServerWith(t, nil)
}

// pagesServerWith is pagesServer with its dependencies changed by edit first.
func pagesServerWith(t testing.TB, edit func(*Deps)) (*httptest.Server, *store.Bolt) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	deps := Deps{
		Sources: func() []bridge.Source { return nil },
		Backlog: func() []bridge.SinkBacklog {
			return []bridge.SinkBacklog{{Sink: "hook", Pending: 3, OldestAt: time.Now().Add(-90 * time.Second)}}
		},
		Routes:      func(string, bridge.Discussion) []bridge.Target { return nil },
		DeadLetters: storeOps{st},
		History:     st,
	}
	if edit != nil {
		edit(&deps)
	}
	c, err := New(deps)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var olderLink = regexp.MustCompile(`href="(/deliveries\?[^"]+)" id="older"`)

// TestDeliveriesPages pages through 250 attempts 100 at a time, newest first, and refuses
// a bad time filter with a precise message.
func TestDeliveriesPages(t *testing.T) {
	srv, st := pagesServer(t)
	t0 := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	var recs []bridge.AttemptRecord
	for i := range 250 {
		recs = append(recs, bridge.AttemptRecord{Queue: bridge.Queue{Target: bridge.Target{Route: "all", Sink: "hook"}, Discussion: fmt.Sprintf("disc-%d", i%5)},
			EventID: fmt.Sprintf("evt_%04d", i), EventType: bridge.MessageCreated, Attempt: 1, At: t0.Add(time.Duration(i) * time.Second),
			Outcome: bridge.OutcomeDelivered})
	}
	if err := st.LogAttempts(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	next := "/deliveries"
	var seen []string
	for page := 0; next != "" && page < 5; page++ {
		code, body := get(t, srv.URL+next)
		if code != 200 {
			t.Fatalf("%s: %d\n%s", next, code, body)
		}
		seen = append(seen, regexp.MustCompile(`evt_\d{4}`).FindAllString(body, -1)...)
		next = ""
		if m := olderLink.FindStringSubmatch(body); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	// Each event id appears twice per row (link text and href).
	if len(seen) != 500 || seen[0] != "evt_0249" || seen[len(seen)-1] != "evt_0000" {
		t.Fatalf("paged through %d ids, first %s, last %s", len(seen), seen[0], seen[len(seen)-1])
	}
	code, body := get(t, srv.URL+"/deliveries?discussion=disc-3&outcome=delivered")
	if code != 200 || strings.Count(body, `class="attempt"`) != 50 {
		t.Errorf("discussion filter: %d, %d rows", code, strings.Count(body, `class="attempt"`))
	}
	if code, body := get(t, srv.URL+"/deliveries?since=yesterday"); code != 400 || !strings.Contains(body, `since: &#34;yesterday&#34; is neither a time`) {
		t.Errorf("bad since: %d\n%s", code, body)
	}
}

// With state.attempts.record: failures the pages say that successful tries are not kept:
// the overview, the deliveries page and the discussions' last-attempt column.
func TestFailedOnlyHistoryIsSaid(t *testing.T) {
	for _, failedOnly := range []bool{false, true} {
		srv, _ := pagesServerWith(t, func(d *Deps) {
			d.HistoryStats = func() bridge.AttemptHistory { return bridge.AttemptHistory{Enabled: true, FailedOnly: failedOnly} }
		})
		for _, page := range []struct{ path, says string }{
			{"/", "(failed attempts only)"},
			{"/deliveries", `id="failed-only"`},
			{"/discussions", "Last failed attempt"},
		} {
			code, body := get(t, srv.URL+page.path)
			if code != 200 || strings.Contains(body, page.says) != failedOnly {
				t.Errorf("failed only %v, %s: %d, says %q: %v", failedOnly, page.path, code, page.says, strings.Contains(body, page.says))
			}
		}
	}
}

// TestDeadLetterActions lists, inspects and drops dead letters through the pages: the
// payload hides attachment URL queries, a bulk drop without a filter needs all=yes, and a
// drop filtered by discussion leaves the others.
func TestDeadLetterActions(t *testing.T) {
	srv, st := pagesServer(t)
	ctx := context.Background()
	target := bridge.Target{Route: "all", Sink: "hook"}
	for i := range 4 {
		disc := []string{"alpha", "beta"}[i%2]
		e := bridge.Event{ID: fmt.Sprintf("evt_%d", i), Type: bridge.MessageCreated, Source: "acme", Discussion: bridge.Discussion{ID: disc},
			Message: &bridge.Message{ID: fmt.Sprint(i), Kind: bridge.KindUser, Text: "hello",
				Attachments: []bridge.Attachment{{Filename: "a.png", URL: "https://files.example/a.png?X-Amz-Signature=SIGNEDTOKEN"}}}}
		if _, err := st.Append(ctx, []bridge.Record{{Event: e, Targets: []bridge.Target{target}}}); err != nil {
			t.Fatal(err)
		}
		p, ok, err := st.Head(ctx, bridge.Queue{Target: target, Discussion: disc})
		if err != nil || !ok {
			t.Fatalf("head: %v %v", ok, err)
		}
		if err := st.DeadLetter(ctx, p, "permanent failure: HTTP 400"); err != nil {
			t.Fatal(err)
		}
	}
	code, body := get(t, srv.URL+"/dead-letters")
	if code != 200 || !strings.Contains(body, `<span id="total">4</span>`) {
		t.Fatalf("list: %d\n%s", code, body)
	}
	id := regexp.MustCompile(`href="/dead-letters/([^"]+)" class="inspect"`).FindStringSubmatch(body)
	if id == nil {
		t.Fatalf("no inspect link:\n%s", body)
	}
	code, body = get(t, srv.URL+"/dead-letters/"+id[1])
	if code != 200 || !strings.Contains(body, "files.example/a.png?…") || strings.Contains(body, "SIGNEDTOKEN") || !strings.Contains(body, "permanent failure") {
		t.Errorf("dead letter page: %d\n%s", code, body)
	}

	post := func(form url.Values) (int, string) {
		t.Helper()
		resp, err := http.PostForm(srv.URL+"/dead-letters/drop", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(url.Values{"scope": {"filter"}}); code != 400 || !strings.Contains(body, "all=yes") {
		t.Errorf("unfiltered drop without all=yes: %d %s", code, body)
	}
	if code, body := post(url.Values{}); code != 400 || !strings.Contains(body, "no dead letters chosen") {
		t.Errorf("drop of nothing: %d %s", code, body)
	}
	if code, body := post(url.Values{"scope": {"filter"}, "discussion": {"beta"}}); code != 200 || !strings.Contains(body, "dropped 2 dead letter(s)") {
		t.Errorf("filtered drop (after the redirect): %d\n%s", code, body)
	}
	left, err := st.DeadLetters(ctx, bridge.DeadLetterFilter{})
	if err != nil || len(left) != 2 || left[0].Pending.Queue.Discussion != "alpha" || left[1].Pending.Queue.Discussion != "alpha" {
		t.Fatalf("left after dropping beta: %d, %v", len(left), err)
	}
	if code, body := post(url.Values{"id": {left[0].ID}}); code != 200 || !strings.Contains(body, "dropped 1 dead letter(s)") {
		t.Errorf("drop by id: %d\n%s", code, body)
	}
	if code, body := get(t, srv.URL+"/dead-letters/"+left[0].ID); code != 404 {
		t.Errorf("dropped dead letter still shown: %d %s", code, body)
	}
	// The overview shows the sink's backlog.
	// (about 1m30s: the page reads its clock a moment before the backlog's.)
	if code, body := get(t, srv.URL+"/"); code != 200 || !regexp.MustCompile(`>1m[23]\ds<`).MatchString(body) || !strings.Contains(body, "single node") {
		t.Errorf("overview: %d\n%s", code, body)
	}
}
