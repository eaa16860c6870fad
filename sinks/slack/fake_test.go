package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
)

// fakeSlack speaks the part of the Slack Web API the sink uses, over a real loopback socket:
// form-encoded POSTs to /api/<method>, {"ok":true,…} or {"ok":false,"error":"…"} answers,
// 429 with Retry-After. It records every call and can be told to fail the next calls of a
// method.
type fakeSlack struct {
	srv   *httptest.Server
	token string

	mu       sync.Mutex
	calls    []apiCall
	seq      int
	messages map[string]*fakeMessage // channel + " " + ts
	channels []fakeChannel
	users    map[string]string // email → user id
	faults   map[string][]fault
	pageSize int
	release  chan struct{} // closed at cleanup: frees handlers told to hang
}

type apiCall struct {
	Method string
	Form   map[string]string
	TS     string // the ts a successful chat.postMessage returned
}

func (c apiCall) get(k string) string { return c.Form[k] }

type fakeMessage struct {
	Channel, TS, ThreadTS, Text, Username, IconURL string
	Deleted                                        bool
}

type fakeChannel struct{ ID, Name string }

// fault is how the next call of a method fails.
type fault struct {
	status     int    // HTTP status; 0 means 200
	retryAfter string // Retry-After header
	code       string // ok:false error code
	body       string // raw body instead
	hang       bool   // never answer (until the client gives up)
}

const testToken = "xoxb-1111-2222-SeCrEtToKeNvAlUe"

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	f := &fakeSlack{
		token:    testToken,
		messages: map[string]*fakeMessage{},
		channels: []fakeChannel{{"C0000OPS1", "ops"}, {"C0000DEV2", "dev"}, {"G0000SEC3", "secret-room"}},
		users:    map[string]string{},
		faults:   map[string][]fault{},
		pageSize: 2,
		release:  make(chan struct{}),
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve)) // binds 127.0.0.1
	t.Cleanup(func() {
		close(f.release)
		f.srv.Close()
	})
	return f
}

func (f *fakeSlack) url() string { return f.srv.URL + "/api/" }

// fail queues faults for the next calls of method.
func (f *fakeSlack) fail(method string, fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[method] = append(f.faults[method], fs...)
}

func (f *fakeSlack) callsOf(method string) []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCall
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeSlack) message(ch, ts string) (fakeMessage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.messages[ch+" "+ts]
	if !ok {
		return fakeMessage{}, false
	}
	return *m, true
}

func (f *fakeSlack) serve(w http.ResponseWriter, r *http.Request) {
	method, ok := strings.CutPrefix(r.URL.Path, "/api/")
	if !ok || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form := map[string]string{}
	for k, v := range r.PostForm {
		form[k] = v[0]
	}
	token := form["token"]
	if h := r.Header.Get("Authorization"); token == "" && strings.HasPrefix(h, "Bearer ") {
		token = strings.TrimPrefix(h, "Bearer ")
	}
	delete(form, "token")

	f.mu.Lock()
	f.calls = append(f.calls, apiCall{Method: method, Form: form})
	idx := len(f.calls) - 1
	var ft *fault
	if q := f.faults[method]; len(q) > 0 {
		ft, f.faults[method] = &q[0], q[1:]
	}
	f.mu.Unlock()

	if ft != nil {
		switch {
		case ft.hang:
			select {
			case <-r.Context().Done():
			case <-f.release:
			}
			return
		case ft.retryAfter != "":
			w.Header().Set("Retry-After", ft.retryAfter)
		}
		if ft.status != 0 {
			w.WriteHeader(ft.status)
		}
		switch {
		case ft.body != "":
			fmt.Fprint(w, ft.body)
		case ft.code != "":
			writeJSON(w, map[string]any{"ok": false, "error": ft.code})
		}
		return
	}
	if token != f.token {
		writeJSON(w, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	answer := f.answer(method, form)
	if ts, ok := answer["ts"].(string); ok && method == "chat.postMessage" {
		f.mu.Lock()
		f.calls[idx].TS = ts
		f.mu.Unlock()
	}
	writeJSON(w, answer)
}

func (f *fakeSlack) answer(method string, form map[string]string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	bad := func(code string) map[string]any { return map[string]any{"ok": false, "error": code} }
	ch := form["channel"]
	known := slices.ContainsFunc(f.channels, func(c fakeChannel) bool { return c.ID == ch })
	switch method {
	case "chat.postMessage":
		if !known {
			return bad("channel_not_found")
		}
		if form["text"] == "" {
			return bad("no_text")
		}
		f.seq++
		ts := fmt.Sprintf("1700000000.%06d", f.seq)
		f.messages[ch+" "+ts] = &fakeMessage{Channel: ch, TS: ts, ThreadTS: form["thread_ts"], Text: form["text"],
			Username: form["username"], IconURL: form["icon_url"]}
		return map[string]any{"ok": true, "channel": ch, "ts": ts, "message": map[string]any{"text": form["text"]}}
	case "chat.update":
		m, ok := f.messages[ch+" "+form["ts"]]
		if !ok || m.Deleted {
			return bad("message_not_found")
		}
		m.Text = form["text"]
		return map[string]any{"ok": true, "channel": ch, "ts": m.TS, "text": m.Text}
	case "chat.delete":
		m, ok := f.messages[ch+" "+form["ts"]]
		if !ok || m.Deleted {
			return bad("message_not_found")
		}
		m.Deleted = true
		return map[string]any{"ok": true, "channel": ch, "ts": m.TS}
	case "conversations.list":
		if form["types"] != "public_channel,private_channel" {
			return bad("invalid_types")
		}
		start, _ := strconv.Atoi(form["cursor"])
		end := min(start+f.pageSize, len(f.channels))
		page := []map[string]any{}
		for _, c := range f.channels[start:end] {
			page = append(page, map[string]any{"id": c.ID, "name": c.Name})
		}
		next := ""
		if end < len(f.channels) {
			next = strconv.Itoa(end)
		}
		return map[string]any{"ok": true, "channels": page, "response_metadata": map[string]any{"next_cursor": next}}
	case "users.lookupByEmail":
		id, ok := f.users[strings.ToLower(form["email"])]
		if !ok {
			return bad("users_not_found")
		}
		return map[string]any{"ok": true, "user": map[string]any{"id": id, "name": "someone"}}
	}
	return bad("unknown_method")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// memKV is an in-memory KV.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (k *memKV) Get(_ context.Context, ns, key string) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[ns+"|"+key]
	return slices.Clone(v), ok, nil
}

func (k *memKV) Put(_ context.Context, ns, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[ns+"|"+key] = slices.Clone(v)
	return nil
}

// baseConfig is a configuration against the fake with a rate high enough not to matter.
func baseConfig(f *fakeSlack) Config {
	return Config{Token: config.Secret(f.token), Channel: "C0000OPS1", APIURL: f.url(), Rate: 1000, Burst: 1000,
		Timeout: config.Duration(10 * time.Second)}
}

func newSink(t *testing.T, cfg Config, kv KV) *Sink {
	t.Helper()
	s, err := New("ops-slack", cfg, Options{KV: kv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// event builds a message event; text may be "" for deletes.
func event(typ, discussion, id, parent, text string) bridge.Event {
	raw, _ := json.Marshal(text)
	return bridge.Event{
		ID:         bridge.EventID("acme", discussion, id, "", typ),
		Type:       typ,
		Source:     "acme",
		Discussion: bridge.Discussion{ID: discussion, Title: "Incident " + discussion, URL: "https://acme.kinops.io/#/discussions/" + discussion},
		Message: &bridge.Message{ID: id, ParentID: parent, Kind: bridge.KindUser, Text: text,
			Content: []bridge.Token{{Type: "text", Value: raw}},
			Author:  bridge.User{Username: "alice", DisplayName: "Alice Doe", Email: "Alice@Example.com"}},
	}
}

func deliver(t *testing.T, s *Sink, e bridge.Event, channel string) {
	t.Helper()
	if err := s.Deliver(context.Background(), bridge.Delivery{Event: e, Target: bridge.Target{Route: "r", Sink: s.Name(), Channel: channel}, Attempt: 1}); err != nil {
		t.Fatalf("deliver %s %s: %v", e.Type, e.Message.ID, err)
	}
}
