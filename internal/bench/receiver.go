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

func newBenchTarget(expect int) *recvTarget {
	return &recvTarget{first: make(map[string]time.Time, expect), order: map[string][]string{}}
}

func startBenchReceiver(targets, expect int) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{base: "http://" + ln.Addr().String() + "/hook/"}
	for range targets {
		r.targets = append(r.targets, newBenchTarget(expect))
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
		err = json.Unmarshal(buf.Bytes(), &env)
		bufs.Put(buf)
		r.targets[i].record(env.Data.Discussion.ID, env.Data.Message.ID, at, err == nil)
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
