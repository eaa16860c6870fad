package kinetictest

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// drain reads frames until the connection fails; the caller closes it.
func drain(c *wsClient, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return
		}
	}
}

// BenchmarkPostMessage measures PostMessage with its broadcast to 10 draining subscribers
// of the same discussion, among 10,000 discussions.
func BenchmarkPostMessage(b *testing.B) {
	s := NewServer(Options{SendBuffer: 1 << 16})
	defer s.Close()
	for i := range 10000 {
		s.CreateDiscussion(DiscussionSpec{Title: "d" + strconv.Itoa(i)})
	}
	d := s.CreateDiscussion(DiscussionSpec{Title: "hot"})
	tok, _ := s.Token("integration-user")
	var wg sync.WaitGroup
	for range 10 {
		c := dial(b, s)
		c.identify(tok)
		c.subscribe(d.ID)
		wg.Add(1)
		go drain(c, &wg)
	}
	u := User{Username: "bench"}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.PostMessage(d.ID, u, "benchmark message"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s.Close()
	wg.Wait()
}

// BenchmarkRESTPost measures POST /discussions/{id}/messages over loopback HTTP, spread
// over 100 discussions by parallel clients.
func BenchmarkRESTPost(b *testing.B) {
	s := NewServer(Options{})
	defer s.Close()
	var ids []string
	for i := range 100 {
		ids = append(ids, s.CreateDiscussion(DiscussionSpec{Title: "d" + strconv.Itoa(i)}).ID)
	}
	tok, _ := s.Token("integration-user")
	body := []byte(`{"content":[{"type":"text","value":"benchmark message"}]}`)
	var n sync.Mutex
	next := 0
	b.RunParallel(func(pb *testing.PB) {
		n.Lock()
		id := ids[next%len(ids)]
		next++
		n.Unlock()
		url := s.URL() + "/app/discussions/api/v1/discussions/" + id + "/messages"
		for pb.Next() {
			// No test helpers here: they may call FailNow, which is only allowed on the
			// benchmark's own goroutine.
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
