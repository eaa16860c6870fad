package stdout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	"github.com/kdbridge/kdbridge/sinks/stdout"
)

var at = time.Date(2026, 11, 26, 17, 0, 0, 0, time.FixedZone("CET", 3600))

func event(typ string, m *bridge.Message) bridge.Event {
	return bridge.Event{
		ID: "evt_1", Type: typ, Source: "acme", Time: at,
		Discussion: bridge.Discussion{ID: "d1", Title: "Incident 42"},
		Message:    m,
	}
}

func deliver(t *testing.T, s *stdout.Sink, e bridge.Event) error {
	t.Helper()
	return s.Deliver(context.Background(), bridge.Delivery{Event: e, Attempt: 1})
}

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	s := stdout.New("console", stdout.Config{}, &buf)
	if s.Name() != "console" {
		t.Errorf("Name = %q", s.Name())
	}
	msg := event(bridge.MessageCreated, &bridge.Message{ID: "m1", Kind: bridge.KindUser, Text: "hi <!channel>\n\"x\"",
		Author: bridge.User{DisplayName: "Alice"}})
	other := event(bridge.ParticipantCreated, nil)
	other.ID = "evt_2"
	for _, e := range []bridge.Event{msg, other} {
		if err := deliver(t, s, e); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines:\n%s", len(lines), buf.String())
	}
	for i, e := range []bridge.Event{msg, other} {
		env, err := bridge.MarshalEnvelope(e)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"id":"` + e.ID + `",` + string(env[1:])
		if lines[i] != want {
			t.Errorf("line %d:\n%s\nwant\n%s", i, lines[i], want)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &v); err != nil || v["id"] != e.ID || v["type"] != e.Type {
			t.Errorf("line %d is not the envelope plus id: %v %v", i, err, v)
		}
	}
}

func TestText(t *testing.T) {
	att := []bridge.Attachment{{Filename: "log.txt"}}
	tests := []struct {
		name string
		e    bridge.Event
		want string
	}{
		{"created", event(bridge.MessageCreated, &bridge.Message{Text: "the DB is down", Author: bridge.User{Username: "alice", DisplayName: "Alice Smith"}}),
			"2026-11-26T16:00:00Z acme [Incident 42] Alice Smith: the DB is down\n"},
		{"username when no display name", event(bridge.MessageCreated, &bridge.Message{Text: "x", Author: bridge.User{Username: "alice"}}),
			"2026-11-26T16:00:00Z acme [Incident 42] alice: x\n"},
		{"system message", event(bridge.MessageCreated, &bridge.Message{Kind: bridge.KindSystem, Text: "Participant Joined"}),
			"2026-11-26T16:00:00Z acme [Incident 42] system: Participant Joined\n"},
		{"edited", event(bridge.MessageUpdated, &bridge.Message{Text: "fixed", Author: bridge.User{DisplayName: "Al"}}),
			"2026-11-26T16:00:00Z acme [Incident 42] Al (edited): fixed\n"},
		{"deleted", event(bridge.MessageDeleted, &bridge.Message{Author: bridge.User{DisplayName: "Al"}}),
			"2026-11-26T16:00:00Z acme [Incident 42] Al deleted a message\n"},
		{"attachment", event(bridge.MessageCreated, &bridge.Message{Text: "see", Author: bridge.User{DisplayName: "Al"}, Attachments: att}),
			"2026-11-26T16:00:00Z acme [Incident 42] Al: see [file: log.txt]\n"},
		{"multi-line and hostile text stays one safe line",
			event(bridge.MessageCreated, &bridge.Message{Text: "a\nb\r\tc \x1b[31mred\u202e ü", Author: bridge.User{DisplayName: "Al"}}),
			"2026-11-26T16:00:00Z acme [Incident 42] Al: a\\nb\\r c \\x1b[31mred\\u202e ü\n"},
		{"not a message", event(bridge.ParticipantCreated, nil),
			"2026-11-26T16:00:00Z acme [Incident 42] participant.created\n"},
		{"untitled discussion", func() bridge.Event {
			e := event(bridge.DiscussionUpdated, nil)
			e.Discussion.Title = ""
			return e
		}(), "2026-11-26T16:00:00Z acme [d1] discussion.updated\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := stdout.New("console", stdout.Config{Format: stdout.FormatText}, &buf)
			if err := deliver(t, s, tt.e); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("got  %q\nwant %q", buf.String(), tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, f := range []string{"", "json", "text"} {
		c := stdout.Config{Format: f}
		if err := c.Validate(); err != nil {
			t.Errorf("format %q: %v", f, err)
		}
	}
	c := stdout.Config{Format: "yaml"}
	var fe *config.FieldError
	if err := c.Validate(); !errors.As(err, &fe) || fe.Field != "format" {
		t.Errorf("format yaml: err = %v, want a FieldError on format", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteErrorIsRetryable(t *testing.T) {
	s := stdout.New("console", stdout.Config{}, failingWriter{})
	err := deliver(t, s, event(bridge.ParticipantCreated, nil))
	if err == nil || bridge.IsPermanent(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if _, ok := bridge.RetryAfterOf(err); ok {
		t.Errorf("err = %v asks for a wait", err)
	}
}

func TestInvalidRawIsPermanent(t *testing.T) {
	var buf bytes.Buffer
	s := stdout.New("console", stdout.Config{}, &buf)
	e := event(bridge.ParticipantCreated, nil)
	e.Raw = json.RawMessage(`{"broken`)
	if err := deliver(t, s, e); !bridge.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q", buf.String())
	}
}

func TestCancelledContext(t *testing.T) {
	var buf bytes.Buffer
	s := stdout.New("console", stdout.Config{}, &buf)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Deliver(ctx, bridge.Delivery{Event: event(bridge.ParticipantCreated, nil)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// lineWriter fails the test if a Write is not a whole line; bytes.Buffer is not safe for
// concurrent use, so without the sink's mutex the race detector also objects.
type lineWriter struct {
	t   *testing.T
	buf bytes.Buffer
}

func (w *lineWriter) Write(p []byte) (int, error) {
	if len(p) == 0 || p[len(p)-1] != '\n' || bytes.Count(p, []byte("\n")) != 1 {
		w.t.Errorf("write is not one line: %q", p)
	}
	return w.buf.Write(p)
}

func TestConcurrentDeliveriesDoNotInterleave(t *testing.T) {
	w := &lineWriter{t: t}
	for _, format := range []string{stdout.FormatJSON, stdout.FormatText} {
		s := stdout.New("console", stdout.Config{Format: format}, w)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 25 {
					e := event(bridge.MessageCreated, &bridge.Message{Text: fmt.Sprintf("g%d m%d\nsecond line", i, j)})
					if err := deliver(t, s, e); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
	}
	if n := strings.Count(w.buf.String(), "\n"); n != 2*8*25 {
		t.Errorf("%d lines, want %d", n, 2*8*25)
	}
}
