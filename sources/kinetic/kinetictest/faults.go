package kinetictest

import (
	"sync"
	"sync/atomic"
	"time"
)

// faults holds the fault-injection switches. Counters are consumed one request at a time,
// so "the next n" is exact under concurrency.
type faults struct {
	refuseIdentifies atomic.Int64
	withholdAcks     atomic.Bool
	subscribeDelay   atomic.Int64 // time.Duration each subscribe takes to process, one at a time
	subscribeLatency atomic.Int64 // time.Duration before a subscribe is answered, many at once
	silenceExpired   atomic.Bool

	mu          sync.Mutex
	restFails   int
	restStatus  int
	tokenFails  int
	tokenStatus int
	forbidden   map[[2]string]bool // {username, discussion id}
	foreign     map[string]foreignAnswer

	stallMu sync.Mutex
	// stall is non-nil while connections are stalled; it is closed when the stall ends.
	stall atomic.Pointer[chan struct{}]
}

// takeOne consumes one unit of n if any is left.
func takeOne(n *atomic.Int64) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

func (f *faults) takeRESTFailure() (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.restFails <= 0 {
		return 0, false
	}
	f.restFails--
	return f.restStatus, true
}

func (f *faults) takeTokenFailure() (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tokenFails <= 0 {
		return 0, false
	}
	f.tokenFails--
	return f.tokenStatus, true
}

func (f *faults) isForbidden(username, discussionID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forbidden[[2]string{username, discussionID}]
}

// DropConnections closes every open websocket abruptly: no close frame, as when a proxy or
// the network drops the connection.
func (s *Server) DropConnections() {
	for _, c := range s.hub.snapshot() {
		c.kill()
	}
}

// RefuseIdentifies makes the next n identify actions fail with ack-error "Unauthorized",
// whatever their token.
func (s *Server) RefuseIdentifies(n int) { s.faults.refuseIdentifies.Store(int64(n)) }

// WithholdAcks, while on, makes the server drop identify, subscribe and unsubscribe actions
// without answering or acting on them, as if they were lost; heartbeats are unaffected.
func (s *Server) WithholdAcks(on bool) { s.faults.withholdAcks.Store(on) }

// SendRaw queues frame, unchanged, as a text frame on every open connection (identified or
// not): garbage, oversized frames, unknown events.
func (s *Server) SendRaw(frame []byte) {
	for _, c := range s.hub.snapshot() {
		c.enqueue(append([]byte(nil), frame...))
	}
}

// Forbid bars a user from a discussion: subscribe answers ack-error "Unauthorized" and REST
// calls on the discussion answer 403. Existing subscriptions are left alone (combine with
// Unsubscribe to evict).
func (s *Server) Forbid(username, discussionID string) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if s.faults.forbidden == nil {
		s.faults.forbidden = make(map[[2]string]bool)
	}
	s.faults.forbidden[[2]string{username, discussionID}] = true
}

// Allow lifts a Forbid.
func (s *Server) Allow(username, discussionID string) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	delete(s.faults.forbidden, [2]string{username, discussionID})
}

// FailREST makes the next n Discussions REST calls answer status with a JSON error body
// before any other processing (authentication included). The token endpoint is not a
// Discussions REST call: see FailTokens.
func (s *Server) FailREST(n int, status int) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.restFails, s.faults.restStatus = n, status
}

// FailTokens makes the next n token requests answer status with a JSON error body.
func (s *Server) FailTokens(n int, status int) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.tokenFails, s.faults.tokenStatus = n, status
}

// Stall, while on, makes every websocket half-open: the server stops reading frames from
// and writing frames (and pings) to open connections without closing them, and new
// connections complete their upgrade and then stall too. Frames for stalled connections
// keep queueing; a full queue still closes the connection (see conn.enqueue). Turning the
// stall off resumes every connection where it stopped.
func (s *Server) Stall(on bool) {
	f := &s.faults
	f.stallMu.Lock()
	defer f.stallMu.Unlock()
	cur := f.stall.Load()
	switch {
	case on && cur == nil:
		ch := make(chan struct{})
		f.stall.Store(&ch)
	case !on && cur != nil:
		f.stall.Store(nil)
		close(*cur)
	}
}

func (s *Server) stalled() bool { return s.faults.stall.Load() != nil }

// waitUnstalled blocks while the server is stalled; it reports false if done closes first.
func (s *Server) waitUnstalled(done <-chan struct{}) bool {
	for {
		ch := s.faults.stall.Load()
		if ch == nil {
			return true
		}
		select {
		case <-*ch:
		case <-done:
			return false
		}
	}
}

// SetSubscribeDelay makes every subscribe take d to process before it is answered, as a
// real subscribe does database work (adding the participant, posting the "joined"
// message). Each connection processes its frames in order, one at a time, so subscribes
// sent together are answered d apart: the n-th waits n×d. Zero turns it off.
func (s *Server) SetSubscribeDelay(d time.Duration) { s.faults.subscribeDelay.Store(int64(d)) }

// SetSubscribeLatency makes every subscribe wait d after it was read before it is processed,
// as a server that works on many subscribes at once does: subscribes sent together are all
// answered about d after they were sent, however many there are (with SetSubscribeDelay,
// each then also takes its delay, one at a time). Zero turns it off.
func (s *Server) SetSubscribeLatency(d time.Duration) { s.faults.subscribeLatency.Store(int64(d)) }

// processSubscribe waits out the latency of a subscribe read at read, then the subscribe
// delay, on a connection's processor; it reports false if the connection ends first.
func (s *Server) processSubscribe(read time.Time, done <-chan struct{}) bool {
	d := time.Duration(s.faults.subscribeDelay.Load())
	if l := time.Duration(s.faults.subscribeLatency.Load()); l > 0 {
		d += max(time.Until(read.Add(l)), 0)
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// SilenceExpired, while on, makes the Topic Hub stop sending discussion events (messages,
// participants, presence…) to a connection once the token it identified with has expired,
// without closing it or saying anything: what a real server may do (protocol §9.2). Acks and
// heartbeats are unaffected; identifying again with a fresh token resumes the events.
func (s *Server) SilenceExpired(on bool) { s.faults.silenceExpired.Store(on) }

// foreignAnswer is what a path answers instead of the simulator (see AnswerForeign).
type foreignAnswer struct {
	status      int
	contentType string
	body        string
}

// AnswerForeign makes every request to path (such as "/app/oauth/token" or
// "/app/topics/socket") answer status with this body, as a server that is not Kinetic does:
// a web site's HTML page, a proxy's 404. A status of 0 removes the answer.
func (s *Server) AnswerForeign(path string, status int, contentType, body string) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if status == 0 {
		delete(s.faults.foreign, path)
		return
	}
	if s.faults.foreign == nil {
		s.faults.foreign = make(map[string]foreignAnswer)
	}
	s.faults.foreign[path] = foreignAnswer{status: status, contentType: contentType, body: body}
}

func (f *faults) foreignAnswer(path string) (foreignAnswer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.foreign[path]
	return a, ok
}
