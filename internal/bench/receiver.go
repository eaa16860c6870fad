package bench

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kdbridge/kdbridge/internal/jsonscan"
)

// receiver is the loopback webhook endpoint of a scenario: one path per target
// (/hook/0, /hook/1, …). It records when each message first arrived, the order of arrivals
// per discussion and every duplicate, and answers 204. It does not verify signatures: that
// would be the receiver's CPU, which shares the machine with the daemon under test.
type receiver struct {
	srv     *http.Server
	base    string
	targets []*recvTarget
	wg      sync.WaitGroup
}

// recvTarget is what one target received.
type recvTarget struct {
	mu         sync.Mutex
	first      map[string]time.Time // message id → first arrival
	order      map[string][]string  // discussion → message ids, first arrivals in arrival order
	dups       int
	unexpected int // bodies without a message id
	last       time.Time
	unique     atomic.Int64
}

func newRecvTarget(expect int) *recvTarget {
	return &recvTarget{first: make(map[string]time.Time, expect), order: map[string][]string{}}
}

func startReceiver(targets, expect int) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{base: "http://" + ln.Addr().String() + "/hook/"}
	for range targets {
		r.targets = append(r.targets, newRecvTarget(expect))
	}
	bufs := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		at := time.Now()
		i, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/hook/"))
		if err != nil || i < 0 || i >= len(r.targets) {
			http.NotFound(w, req)
			return
		}
		buf := bufs.Get().(*bytes.Buffer)
		buf.Reset()
		_, _ = io.Copy(buf, io.LimitReader(req.Body, 1<<20))
		discussion, message, ok := deliveryIDs(buf.Bytes())
		bufs.Put(buf)
		r.targets[i].record(discussion, message, at, ok)
		w.WriteHeader(http.StatusNoContent)
	})}
	r.wg.Go(func() { _ = r.srv.Serve(ln) }) // ends with close
	return r, nil
}

// URL is the address of target i.
func (r *receiver) URL(i int) string { return r.base + strconv.Itoa(i) }

// URLs are the addresses of every target.
func (r *receiver) URLs() []string {
	out := make([]string, len(r.targets))
	for i := range out {
		out[i] = r.URL(i)
	}
	return out
}

// reset forgets what was received, for the next phase of a scenario.
func (r *receiver) reset(expect int) {
	for _, t := range r.targets {
		t.mu.Lock()
		t.first, t.order = make(map[string]time.Time, expect), map[string][]string{}
		t.dups, t.unexpected, t.last = 0, 0, time.Time{}
		t.unique.Store(0)
		t.mu.Unlock()
	}
}

// unique is the number of distinct messages received, summed over the targets.
func (r *receiver) unique() int64 {
	var n int64
	for _, t := range r.targets {
		n += t.unique.Load()
	}
	return n
}

func (r *receiver) close() {
	_ = r.srv.Close()
	r.wg.Wait()
}

func (t *recvTarget) record(discussion, message string, at time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ok || message == "" {
		t.unexpected++
		return
	}
	if _, seen := t.first[message]; seen {
		t.dups++
		return
	}
	t.first[message] = at
	t.order[discussion] = append(t.order[discussion], message)
	t.last = at
	t.unique.Add(1)
}

// deliveryIDs reads the discussion's and the message's ids from a delivery's body (kdbridge's
// envelope or the raw client's body of the same shape), and whether the body is JSON.
//
// It reads the body in one validating pass (jsonscan) and copies nothing else out, rather than
// decoding it with encoding/json, whose reflection over kdbridge's envelope (twice the raw
// client's body: the message rendered and Kinetic's raw payload) took the receiver — which
// shares the machine with the system under test — several times the time. Whatever the pass
// does not take for certain (escapes, a key in other case, no message id) goes to
// encoding/json, which decides as before.
func deliveryIDs(body []byte) (discussion, message string, ok bool) {
	if d, m, ok := scanDeliveryIDs(body); ok && m != "" {
		return d, m, true
	}
	return jsonDeliveryIDs(body)
}

// jsonDeliveryIDs is deliveryIDs by encoding/json, which decides what the fast path leaves.
func jsonDeliveryIDs(body []byte) (discussion, message string, ok bool) {
	var env struct {
		Data struct {
			Discussion struct {
				ID string `json:"id"`
			} `json:"discussion"`
			Message struct {
				ID string `json:"id"`
			} `json:"message"`
		} `json:"data"`
	}
	err := json.Unmarshal(body, &env)
	return env.Data.Discussion.ID, env.Data.Message.ID, err == nil
}

// scanDeliveryIDs is deliveryIDs' fast path: ok is false when it cannot be sure.
func scanDeliveryIDs(body []byte) (discussion, message string, ok bool) {
	s := jsonscan.Scanner{B: body}
	skip := func() bool { _, ok := s.Value(1); return ok }
	// id reads an object's "id" string into *dst, passing over its other members.
	id := func(dst *string) bool {
		return s.Object(func(key []byte) bool {
			if k := match(key, "id"); k != exact {
				return k == other && skip()
			}
			if s.Peek() != '"' {
				return false // not a string: encoding/json says what it is
			}
			v, plain, ok := s.Str()
			if !ok || !plain {
				return false
			}
			*dst = string(v)
			return true
		})
	}
	ok = s.Object(func(key []byte) bool {
		if k := match(key, "data"); k != exact {
			return k == other && skip()
		}
		return s.Object(func(key []byte) bool {
			switch d, m := match(key, "discussion"), match(key, "message"); {
			case d == exact:
				return id(&discussion)
			case m == exact:
				return id(&message)
			case d == folded || m == folded:
				return false
			}
			return skip()
		})
	})
	return discussion, message, ok && s.End()
}

// How a key matches a field's name.
const (
	other  = iota // another key
	exact         // the name
	folded        // the name in other case (encoding/json matches it too)
)

func match(key []byte, name string) int {
	switch {
	case string(key) == name:
		return exact
	case bytes.EqualFold(key, []byte(name)):
		return folded
	}
	return other
}
