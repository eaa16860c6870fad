package kinetic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// restFake answers the token endpoint and one REST path with scripted statuses.
type restFake struct {
	mu       sync.Mutex
	statuses []int // per REST call; 200 once exhausted
	tokens   int
	calls    int
	bearers  []string
	body     string
	tokenErr int // status of every token request when non-zero
}

func (f *restFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/app/oauth/token" {
		if r.URL.Query().Get("grant_type") != "client_credentials" || r.URL.Query().Get("response_type") != "token" {
			http.Error(w, `{"error":"bad grant"}`, http.StatusBadRequest)
			return
		}
		if id, secret, ok := r.BasicAuth(); !ok || id != "svc" || secret != "p@ss word:!" {
			http.Error(w, `{"error":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		if f.tokenErr != 0 {
			http.Error(w, `{"error":"nope"}`, f.tokenErr)
			return
		}
		f.tokens++
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"bearer","expires_in":43199,"username":"svc"}`, f.tokens)
		return
	}
	f.calls++
	f.bearers = append(f.bearers, r.Header.Get("Authorization"))
	status := http.StatusOK
	if len(f.statuses) > 0 {
		status, f.statuses = f.statuses[0], f.statuses[1:]
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":"scripted","errorKey":"x"}`)
		return
	}
	body := f.body
	if body == "" {
		body = `{"discussion":{"title":"T"}}`
	}
	fmt.Fprint(w, body)
}

func newRESTFake(t *testing.T, f *restFake) *restClient {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	// The secret has characters that URL-escaping in Basic auth would mangle.
	ts := newTokenSource(srv.URL, "svc", "p@ss word:!", client)
	return &restClient{base: srv.URL + "/app/discussions/api/v1", client: client, tokens: ts,
		retry: retryPolicy{initial: time.Millisecond, max: 5 * time.Millisecond, tries: 4}}
}

func TestRESTRetries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		wantErr  int // HTTP status of the error; 0 for success
		calls    int
		tokens   int
	}{
		{"ok", nil, 0, 1, 1},
		{"401 forces one fresh token", []int{401}, 0, 2, 2},
		{"401 twice fails", []int{401, 401}, 401, 2, 2},
		{"5xx retried", []int{502, 503, 500}, 0, 4, 1},
		{"5xx until tries run out", []int{500, 500, 500, 500, 500}, 500, 4, 1},
		{"429 retried", []int{429}, 0, 2, 1},
		{"404 fails at once", []int{404}, 404, 1, 1},
		{"403 fails at once", []int{403}, 403, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &restFake{statuses: tt.statuses}
			r := newRESTFake(t, f)
			d, err := r.discussion(t.Context(), "d1")
			title := d.Title
			var he *httpError
			switch {
			case tt.wantErr == 0 && (err != nil || title != "T"):
				t.Fatalf("title %q, err %v", title, err)
			case tt.wantErr != 0 && (!errors.As(err, &he) || he.Status != tt.wantErr):
				t.Fatalf("err = %v, want status %d", err, tt.wantErr)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.calls != tt.calls || f.tokens != tt.tokens {
				t.Errorf("calls=%d tokens=%d, want %d %d", f.calls, f.tokens, tt.calls, tt.tokens)
			}
			if f.bearers[0] != "Bearer tok-1" {
				t.Errorf("authorization %q", f.bearers[0])
			}
		})
	}
}

func TestRESTBadAnswers(t *testing.T) {
	f := &restFake{body: `{"messages":[{"id":"m1"}],"nextPageToken":"abc"}`}
	r := newRESTFake(t, f)
	p, err := r.messages(t.Context(), "d 1", 10, "tok/1")
	if err != nil || len(p.Messages) != 1 || p.NextPageToken == nil || *p.NextPageToken != "abc" {
		t.Fatalf("page %+v, %v", p, err)
	}

	f.mu.Lock()
	f.body = `<html>oops</html>`
	f.mu.Unlock()
	if _, err := r.messages(t.Context(), "d1", 10, ""); !errors.Is(err, errBadAnswer) {
		t.Errorf("err = %v, want a bad answer", err)
	}
	f.mu.Lock()
	f.body = `{"messages":["` + strings.Repeat("x", maxRESTBody) + `"]}`
	f.calls = 0
	f.mu.Unlock()
	if _, err := r.messages(t.Context(), "d1", 10, ""); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v, want too large", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls != 1 {
		t.Errorf("a too-large answer was retried %d times", f.calls)
	}
}

func TestRESTTokenRefused(t *testing.T) {
	f := &restFake{tokenErr: http.StatusUnauthorized}
	r := newRESTFake(t, f)
	_, err := r.discussion(t.Context(), "d1")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !tokenRefused(err) || f.calls != 0 {
		t.Fatalf("err = %v after %d calls, want a refused token and no call", err, f.calls)
	}
	if !strings.Contains(err.Error(), "check client_id/client_secret") || strings.Contains(err.Error(), "p@ss") {
		t.Errorf("error text: %v", err)
	}
}

// FuzzMessagesPage holds the messages page's fast path to json.Unmarshal: whatever it
// accepts, encoding/json accepts too and reads the same messages (byte for byte) and page
// token; whatever it gives up on, it leaves alone.
func FuzzMessagesPage(f *testing.F) {
	f.Add([]byte(`{"messages":[{"id":"m1","content":[{"type":"text","value":"hi"}]},{"id":"m2"}],"nextPageToken":"abc"}`))
	f.Add([]byte(` { "nextPageToken" : null , "messages" : [ 1 , "x" , null , { "a" : [ ] } ] , "other" : {"x":[1,2]} } `))
	f.Add([]byte(`{"messages":[],"nextPageToken":"a\u0062c"}`))
	f.Add([]byte(`{"messages":null}`))
	f.Add([]byte(`{"Messages":[{}],"messages":[{}]}`))
	f.Add([]byte(`{"messages":[{}],"messages":[]}`))
	f.Add([]byte(`{"messages":{"id":"m1"}}`))
	f.Add([]byte(`{"nextPageToken":7}`))
	f.Add([]byte(`[{"messages":[]}]`))
	f.Add([]byte(`{"messages":[{"id":"\xff"}]} x`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast messagesPage
		ok := fast.scanJSON(body)
		var slow messagesPage
		err := json.Unmarshal(body, &slow)
		if !ok {
			if fast.Messages != nil || fast.NextPageToken != nil {
				t.Fatalf("gave up but changed the page: %+v", fast)
			}
			return
		}
		if err != nil {
			t.Fatalf("fast path accepted %q, json.Unmarshal refuses it: %v", body, err)
		}
		if (fast.Messages == nil) != (slow.Messages == nil) || len(fast.Messages) != len(slow.Messages) {
			t.Fatalf("messages %q, want %q", fast.Messages, slow.Messages)
		}
		for i := range fast.Messages {
			if !bytes.Equal(fast.Messages[i], slow.Messages[i]) {
				t.Fatalf("message %d is %q, want %q", i, fast.Messages[i], slow.Messages[i])
			}
		}
		if (fast.NextPageToken == nil) != (slow.NextPageToken == nil) || fast.NextPageToken != nil && *fast.NextPageToken != *slow.NextPageToken {
			t.Fatalf("token %v, want %v", fast.NextPageToken, slow.NextPageToken)
		}
	})
}

// BenchmarkMessagesPage reads a page of 100 messages as the catch-up does, by the fast path
// and by json.Unmarshal.
func BenchmarkMessagesPage(b *testing.B) {
	var page bytes.Buffer
	page.WriteString(`{"messages":[`)
	for i := range 100 {
		if i > 0 {
			page.WriteByte(',')
		}
		fmt.Fprintf(&page, `{"id":"3f2b8c1e-5d7a-4c9e-8b1f-%012d","versionId":"v1","type":"Message","createdAt":"2026-11-26T17:01:30.123Z","createdBy":{"username":"alice@example.com","displayName":"Alice"},"content":[{"type":"text","value":"The database is down again; paging the on-call, message %d"}]}`, i, i)
	}
	page.WriteString(`],"nextPageToken":"eyJvZmZzZXQiOjEwMH0"}`)
	body := page.Bytes()
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var p messagesPage
			if !p.scanJSON(body) || len(p.Messages) != 100 {
				b.Fatal("scan gave up")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var p messagesPage
			if err := json.Unmarshal(body, &p); err != nil || len(p.Messages) != 100 {
				b.Fatal(err)
			}
		}
	})
}
