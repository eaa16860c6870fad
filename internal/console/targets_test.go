package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/store"
	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// dispOps are the dlq operations as the daemon wires them: replay through the dispatcher.
type dispOps struct {
	*store.Bolt
	d *bridge.Dispatcher
}

func (o dispOps) Replay(ctx context.Context, f bridge.DeadLetterFilter) ([]bridge.DeadLetter, error) {
	return o.d.Replay(ctx, f)
}

// TestReEnableDisabledTarget runs the real webhook sink against an endpoint that answers
// 410 Gone: the overview shows the disabled target with its reason, the deliveries page the
// 410, and the Re-enable button brings the target back, so that the next event is delivered.
func TestReEnableDisabledTarget(t *testing.T) {
	var gone atomic.Bool
	gone.Store(true)
	var delivered atomic.Int32
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gone.Load() {
			w.WriteHeader(http.StatusGone)
			w.Write([]byte("this hook was deleted"))
			return
		}
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer endpoint.Close()
	sink, err := webhook.New("hook", webhook.Config{URL: endpoint.URL}, webhook.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	router := bridge.NewRouter([]bridge.RouteConfig{{Name: "all", To: []bridge.TargetConfig{{Sink: "hook"}}}}, nil)
	var c *Console
	disp := bridge.NewDispatcher(st, router, []bridge.SinkSpec{{Sink: sink}}, bridge.DispatcherOptions{
		Grace: 2 * time.Second, Observer: func(o bridge.Outcome) { c.Observe(o) }})
	c, err = New(Deps{
		Sources:      func() []bridge.Source { return nil },
		Backlog:      disp.Backlog,
		HistoryStats: disp.AttemptHistory,
		Routes:       func(string, bridge.Discussion) []bridge.Target { return nil },
		DeadLetters:  dispOps{st, disp},
		History:      st,
		Targets:      disp,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { disp.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	emit := func(id string) {
		t.Helper()
		e := bridge.Event{ID: id, Type: bridge.MessageCreated, Source: "acme", Discussion: bridge.Discussion{ID: "d1"},
			Message: &bridge.Message{ID: id, Kind: bridge.KindUser, Text: "hello", Author: bridge.User{Username: "alice"}}}
		if err := disp.Emit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	emit("evt_1")
	poll := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	poll("the target disabled", func() bool { return len(disp.ListDisabledTargets()) == 1 })
	code, body := get(t, srv.URL+"/")
	if code != 200 || !strings.Contains(body, "Re-enable") || !strings.Contains(body, "target gone") {
		t.Fatalf("overview: %d\n%s", code, body)
	}
	poll("the 410 in the attempt history", func() bool {
		_, body := get(t, srv.URL+"/deliveries?outcome=dead_letter")
		return strings.Contains(body, "<td>410</td>") && strings.Contains(body, "this hook was deleted")
	})

	gone.Store(false)
	resp, err := http.PostForm(srv.URL+"/targets/enable", url.Values{"route": {"all"}, "sink": {"hook"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Request.URL.RawQuery, "re-enabled") {
		t.Fatalf("re-enable: %d %s", resp.StatusCode, resp.Request.URL)
	}
	if got := disp.ListDisabledTargets(); len(got) != 0 {
		t.Fatalf("still disabled: %+v", got)
	}
	emit("evt_2")
	poll("the next event delivered", func() bool { return delivered.Load() == 1 })
	if _, body := get(t, srv.URL+"/"); strings.Contains(body, "Re-enable") {
		t.Errorf("overview still offers to re-enable:\n%s", body)
	}
}
