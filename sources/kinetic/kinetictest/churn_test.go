package kinetictest

import (
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestConcurrentChurn runs posts, subscribes, unsubscribes, server-side evictions and
// dropped connections at once, for the race detector and for deadlocks; every
// surviving goroutine is caught by goleak in TestMain.
func TestConcurrentChurn(t *testing.T) {
	s := newTestServer(t, Options{})
	var ids []string
	for range 5 {
		ids = append(ids, s.CreateDiscussion(DiscussionSpec{Title: "churn"}).ID)
	}
	tok := token(t, s)

	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if _, err := s.PostMessage(ids[(w+i)%len(ids)], User{Username: "w"}, "x"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 3 {
		c := dial(t, s)
		// A reader that discards everything until the connection ends.
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.conn.SetReadDeadline(time.Now().Add(wait))
			for {
				if _, _, err := c.conn.ReadMessage(); err != nil {
					return
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			send := func(action, topic string) bool {
				frame := `{"topic":"topichub","action":"` + action + `","payload":{"topic":"` + topic + `","token":"` + tok + `"},"ref":"r"}`
				_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
				return c.conn.WriteMessage(websocket.TextMessage, []byte(frame)) == nil
			}
			if !send("identify", "") {
				return
			}
			for i := range 60 {
				action := "subscribe"
				if i%3 == 2 {
					action = "unsubscribe"
				}
				if !send(action, topicOf(ids[i%len(ids)])) {
					return // dropped by the server: fine
				}
			}
		}()
	}
	// The client sees the upgrade answer before the server registers the connection.
	eventually(t, "connections registered", func() bool { return s.Stats().ConnectionsTotal == 3 })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 20 {
			s.Unsubscribe(ids[i%len(ids)])
			if i == 10 {
				s.DropConnections()
			}
		}
	}()
	// Stop the readers once the writers are done: dropping the connections ends them.
	done := make(chan struct{})
	go func() {
		defer close(done)
		wg.Wait()
	}()
	eventually(t, "posts done", func() bool { return s.Stats().Messages >= 300 })
	s.DropConnections()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("churn did not finish")
	}
	eventually(t, "connections gone", func() bool {
		st := s.Stats()
		return st.Connections == 0 && st.Subscriptions == 0
	})
}
