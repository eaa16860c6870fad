package sinkprobe_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/sinkprobe"
)

// TestRecorderKeepsTheAnswer: the recorder keeps the status and the first BodyLimit bytes
// of an answer, hands the whole body on intact, and never keeps the query string, the
// user info or (unless asked) the path.
func TestRecorderKeepsTheAnswer(t *testing.T) {
	long := strings.Repeat("0123456789", 200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, long)
	}))
	defer srv.Close()
	for _, showPath := range []bool{false, true} {
		rec := &sinkprobe.Recorder{Next: srv.Client().Transport, ShowPath: showPath}
		client := &http.Client{Transport: rec}
		u := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1) + "/hooks/s3cret-path?token=s3cret-query"
		resp, err := client.Post(u, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != long {
			t.Fatalf("the client read %d bytes (%v), want the whole %d-byte body", len(body), err, len(long))
		}
		got := rec.Answers()
		if len(got) != 1 {
			t.Fatalf("%d answers recorded, want 1", len(got))
		}
		a := got[0]
		if a.Method != http.MethodPost || a.Status != http.StatusAccepted || a.Body != long[:sinkprobe.BodyLimit] || a.Err != nil {
			t.Errorf("answer = %s %d %q (%v), want POST 202 and the first %d bytes", a.Method, a.Status, a.Body, a.Err, sinkprobe.BodyLimit)
		}
		want := srv.URL
		if showPath {
			want += "/hooks/s3cret-path"
		}
		if a.Endpoint != want {
			t.Errorf("ShowPath %v: endpoint %q, want %q", showPath, a.Endpoint, want)
		}
		for _, secret := range []string{"hunter2", "s3cret-query"} {
			if strings.Contains(a.Endpoint, secret) {
				t.Errorf("the endpoint %q shows %q", a.Endpoint, secret)
			}
		}
	}
}

// TestRecorderNoAnswer: a refused connection is recorded with its error and no status.
func TestRecorderNoAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rec := &sinkprobe.Recorder{Next: &http.Transport{}}
	defer rec.CloseIdleConnections()
	client := &http.Client{Transport: rec}
	if _, err := client.Get("http://" + addr + "/"); err == nil {
		t.Fatal("a GET to a closed port succeeded")
	}
	got := rec.Answers()
	if len(got) != 1 || got[0].Err == nil || got[0].Status != 0 {
		t.Errorf("answers = %+v, want one with an error and no status", got)
	}
}

func TestClassify(t *testing.T) {
	base := errors.New("boom")
	for _, tt := range []struct {
		err  error
		want sinkprobe.Verdict
	}{
		{nil, sinkprobe.Delivered},
		{base, sinkprobe.Retry},
		{bridge.RetryAfter(base, time.Second), sinkprobe.RetryAfter},
		{bridge.Permanent(base), sinkprobe.Permanent},
		{bridge.Gone(base), sinkprobe.Gone},
	} {
		if got := sinkprobe.Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestEventIsMarkedAndFresh: the test event says what it is everywhere it shows, and two
// test events never share an id (a receiver would take the second for a redelivery).
func TestEventIsMarkedAndFresh(t *testing.T) {
	now := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	a, b := sinkprobe.Event("", now), sinkprobe.Event("", now)
	if a.ID == b.ID || a.Message.ID == b.Message.ID {
		t.Errorf("two test events share an id: %s %s", a.ID, a.Message.ID)
	}
	if a.Type != bridge.MessageCreated || a.Source != "send-test" || !a.Time.Equal(now) {
		t.Errorf("event = %s from %q at %v", a.Type, a.Source, a.Time)
	}
	for what, s := range map[string]string{"title": a.Discussion.Title, "text": a.Message.Text, "author": a.Message.Author.Name()} {
		if !strings.Contains(s, sinkprobe.Marker) {
			t.Errorf("the %s %q does not say %q", what, s, sinkprobe.Marker)
		}
	}
}
