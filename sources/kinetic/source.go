package kinetic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/gorilla/websocket"
	"golang.org/x/oauth2"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
)

// Options are the dependencies of a Source; every field is optional.
type Options struct {
	Logger      *slog.Logger // default slog.Default()
	HTTPClient  *http.Client // for the token endpoint and the REST API; default: 30 s timeout
	Checkpoints Checkpoints  // where catch-up checkpoints live; default: in memory
}

// Source is a Kinetic Discussions source: it mirrors the configured discussions as bridge
// events, live from the Topic Hub and caught up from the REST API after every (re)subscribe.
type Source struct {
	name   string
	cfg    Config
	log    *slog.Logger
	cps    Checkpoints
	dec    decoder
	tokens *tokenSource
	rest   *restClient
	dial   dialConfig
	t      timing
	st     *status
	bad    *rateLog
	refs   atomic.Uint64
	run    atomic.Bool
	idle   func() // closes the idle connections of a transport the source owns

	workers  atomic.Pointer[map[string]*worker] // those of the current Run, for Status
	catchUps chan struct{}                      // a slot per catch-up running (see catchUpWithRetry)
	emits    chan struct{}                      // a slot per Emit in progress (see emitAll)
	decodes  chan struct{}                      // a slot per batch of live events decoded and not yet emitted (see deliver)
	returned atomic.Bool                        // start-up's memory was returned to the OS (see watchRest)
	// subscribing is set while the connection has subscribes queued behind its window, and
	// closed when the queue is empty: catch-ups wait for it a while (see fleet.starter).
	subscribing atomic.Pointer[chan struct{}]

	// The wanted discussions: configured (SetDiscussions) and discovered (discover.go).
	setMu      sync.Mutex
	configured []string
	discovered []wanted        // in the order discovery first found them
	removed    map[string]bool // the server removed kdbridge from these (see session.unsubscribed)
	changed    chan struct{}   // 1-buffered: the wanted set changed; read by the goroutine running Run

	watermark      time.Time // owned by the discovery goroutine; see discoveryWatermark
	discoveredNone bool      // owned by the discovery goroutine: the last poll found nothing, and said so
}

var _ bridge.Source = (*Source)(nil)

// timing holds the source's schedules; tests shorten them.
type timing struct {
	reconnectFirst, reconnectMax time.Duration // between connection attempts
	tokenFirst, tokenMax         time.Duration // after the token endpoint refused the credentials
	resubscribe                  time.Duration // retry of refused and server-ended subscriptions
	discoverEvery                time.Duration // if set, overrides discover.every (tests poll faster than its 1s minimum)
	discoverSkew                 time.Duration // clock margin of the discovery watermark
	startSkew                    time.Duration // clock margin of a first start's "now" without the space's clock (see catchUpOnce)
	serverClock                  bool          // a first start's "now" is on the space's clock, read from the token
	clockMargin                  time.Duration // margin of that "now" for the token's whole-second times
	emitFirst, emitMax           time.Duration // retry of an event the emitter did not accept
	catchUpFirst, catchUpMax     time.Duration // retry of a failed catch-up
	rest                         retryPolicy   // retry of one REST call
	badLogEvery                  time.Duration // at most one bad-input line per kind this often
	queueCap                     int           // live events buffered per discussion
	catchUps                     int           // catch-ups of the source running at once
	catchUpYield                 time.Duration // the longest a catch-up waits for the queued subscribes to be sent
	emits                        int           // Emit calls of the source in progress at once
	holdBackPoll                 time.Duration // how often a held-back catch-up asks again (see worker.holdBack)
	liveWaitMax                  time.Duration // the longest wait of reading for the store (see fleet.paceLive)
}

func defaultTiming() timing {
	return timing{
		reconnectFirst: 300 * time.Millisecond, // with ±50 % jitter the first retry is ≤ 0.45 s
		reconnectMax:   30 * time.Second,
		tokenFirst:     10 * time.Second,
		tokenMax:       5 * time.Minute,
		resubscribe:    5 * time.Minute,
		discoverSkew:   time.Minute,
		startSkew:      30 * time.Second,
		serverClock:    true,
		clockMargin:    2 * time.Second,
		emitFirst:      100 * time.Millisecond,
		emitMax:        30 * time.Second,
		catchUpFirst:   time.Second,
		catchUpMax:     2 * time.Minute,
		holdBackPoll:   20 * time.Millisecond,
		rest:           retryPolicy{initial: 500 * time.Millisecond, max: 10 * time.Second, tries: 5},
		badLogEvery:    10 * time.Second,
		queueCap:       10000,
		// Enough to keep the REST API and the emitter busy, few enough that the pages,
		// HTTP buffers and stacks of catch-ups in flight stay small (docs/performance.md,
		// F5: unbounded, 10,000 at start-up).
		catchUps: 16,
		// At start-up, the subscribes go out before the catch-ups their acks start, as long as
		// the server answers quickly: with 10,000 discussions, 16 catch-ups at a time took
		// half the CPU that paces the subscribes (scale bench: 0.76 s to subscribe, 0.44 s
		// without them). A slow server's subscribes take minutes: a catch-up waits at most
		// this long for them, so its discussion's live events are not held up for minutes.
		catchUpYield: time.Second,
		// Each Emit carries up to maxBatch events (catchUpBatch from a catch-up), and all of
		// it is in memory until the store has made it durable. Without a bound, a burst over
		// 200 discussions put the whole burst in the store's commit queue at once, decoded;
		// eight keep a group commit full (up to 2,048 events) while the rest wait undecoded
		// in their queues.
		emits:       8,
		liveWaitMax: 100 * time.Millisecond,
	}
}

// New checks cfg and builds a Source named name. It does no network I/O.
func New(name string, cfg Config, opts Options) (*Source, error) {
	if name == "" {
		return nil, errors.New("kinetic: a source needs a name")
	}
	cfg.Discussions = append([]string(nil), cfg.Discussions...)
	cfg.Defaults()
	if !cfg.ClientSecret.IsSet() && cfg.ClientSecretFile != "" {
		// config.Decode reads _file twins; a Config built in code may not have been decoded.
		data, err := os.ReadFile(cfg.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("kinetic: source %s: client_secret_file: %w", name, err)
		}
		cfg.ClientSecret = config.Secret(strings.TrimRight(string(data), "\r\n"))
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kinetic: source %s: %w", name, err)
	}
	u, _ := url.Parse(cfg.URL) // Validate checked it
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/app/topics/socket"
	u.RawPath = ""

	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ownTransport := false
	if opts.HTTPClient == nil {
		// A transport of our own, so that Run can close its idle connections on return. It
		// keeps a connection for each catch-up that may run at once (and discovery): with
		// net/http's default of two, every REST call of the start-up's catch-ups but two
		// dialed a new connection (a third of their CPU at 10,000 discussions).
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = defaultTiming().catchUps + 2
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: tr}
		ownTransport = true
	}
	if opts.Checkpoints == nil {
		opts.Checkpoints = &MemoryCheckpoints{}
	}
	s := &Source{
		name: name,
		cfg:  cfg,
		log:  opts.Logger.With("source", name),
		cps:  opts.Checkpoints,
		dec:  decoder{source: name, space: cfg.URL, deferEvents: true},
		st:   newStatus(cfg.Discussions),

		configured: cfg.Discussions,
		changed:    make(chan struct{}, 1),
	}
	if ownTransport {
		s.idle = opts.HTTPClient.CloseIdleConnections
	}
	s.tokens = newTokenSource(cfg.URL, cfg.ClientID, cfg.ClientSecret, opts.HTTPClient)
	s.rest = &restClient{base: cfg.URL + "/app/discussions/api/v1", client: opts.HTTPClient, tokens: s.tokens}
	s.dial = dialConfig{
		url:        u.String(),
		heartbeat:  cfg.Heartbeat.D(),
		ackTimeout: cfg.AckTimeout.D(),
		readLimit:  cfg.ReadLimit,
		httpClient: opts.HTTPClient,
		refs:       &s.refs,
	}
	s.setTiming(defaultTiming())
	return s, nil
}

// setTiming sets the schedules (tests shorten them); only before Run.
func (s *Source) setTiming(t timing) {
	s.t = t
	s.catchUps = make(chan struct{}, max(t.catchUps, 1))
	s.emits = make(chan struct{}, max(t.emits, 1))
	s.decodes = make(chan struct{}, 2*max(t.emits, 1))
	s.rest.retry = t.rest
	s.bad = newRateLog(s.log, t.badLogEvery, s.st)
}

// Name implements bridge.Source.
func (s *Source) Name() string { return s.name }

// SelfUser returns the username the source acts as: the username claim of its token, or
// client_id before the first token (Kinetic ties a client_credentials client to the user
// whose username is the client id, but the token is the truth). Safe from any goroutine.
func (s *Source) SelfUser() string {
	if u := s.tokens.Username(); u != "" {
		return u
	}
	return s.cfg.ClientID
}

// Status returns a snapshot of the source's health.
func (s *Source) Status() Status {
	st := s.st.snapshot()
	st.Username = s.tokens.Username()
	st.TokenRequests = s.tokens.requests()
	st.TokenRenewsAt = s.tokens.renewsAt()
	st.Discovering = s.cfg.Discover != nil
	if ws := s.workers.Load(); ws != nil {
		for i := range st.Discussions {
			if w := (*ws)[st.Discussions[i].ID]; w != nil {
				st.Discussions[i].Queued = w.queued()
			}
		}
	}
	return st
}

// Run implements bridge.Source: it connects, subscribes, catches up and emits until ctx is
// done, reconnecting after every failure — bad credentials included, which are logged and
// retried slowly, since an operator may fix them without a restart. It returns nil when
// ctx is done, and an error only when called while already running.
func (s *Source) Run(ctx context.Context, emit bridge.Emitter) error {
	if !s.run.CompareAndSwap(false, true) {
		return fmt.Errorf("kinetic: source %s is already running", s.name)
	}
	defer s.run.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		if s.idle != nil {
			s.idle()
		}
	}()
	fl := s.newFleet(ctx, emit, &wg)
	if !fl.firsts.load(ctx) {
		return nil
	}
	fl.sync(s.desired())
	defer s.workers.Store(nil)
	if s.cfg.Discover != nil {
		wg.Go(func() { s.discover(ctx) })
	}

	reconnect := &backoff.ExponentialBackOff{
		InitialInterval:     s.t.reconnectFirst,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         s.t.reconnectMax,
	}
	refused := &backoff.ExponentialBackOff{
		InitialInterval:     s.t.tokenFirst,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         s.t.tokenMax,
	}
	reconnect.Reset()
	refused.Reset()
	var lastProblem string
	var lastLogged time.Time
	for {
		identifiedAt, err := s.session(ctx, fl)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("kinetic: connection ended")
		}
		if errors.Is(err, errTokenRenewal) {
			// Planned: no failure, no backoff.
			s.log.Info("kinetic: reconnecting to renew the token before it expires")
			reconnect.Reset()
			if !s.waitReconnect(ctx, 0, fl) {
				return nil
			}
			continue
		}
		s.st.setError(err)
		if errors.Is(err, websocket.ErrReadLimit) {
			s.bad.badInput(badOversized, fmt.Errorf("a frame exceeded read_limit (%d bytes); reconnecting", s.cfg.ReadLimit))
		}
		var delay time.Duration
		if configProblem(err) {
			delay = refused.NextBackOff()
		} else {
			refused.Reset()
			if !identifiedAt.IsZero() {
				// The connection worked: its end is a new problem, retried from the first
				// step (within 0.5 s). The backoff grows only over attempts that fail to
				// get that far.
				reconnect.Reset()
			}
			delay = min(reconnect.NextBackOff(), s.t.reconnectMax) // jitter must not pass the cap
		}
		// One line per change of state: a drop after being connected, or a new kind of
		// failure; the same failure again is only debug, but for a reminder every 10
		// minutes that keeps a lasting problem visible.
		problem := problemKey(err)
		news := problem != lastProblem || time.Since(lastLogged) >= 10*time.Minute
		retryIn := delay.Round(time.Millisecond)
		switch {
		case !identifiedAt.IsZero():
			s.log.Warn("kinetic: disconnected", "error", err, "retry_in", retryIn)
			problem = ""
		case news && configProblem(err):
			s.log.Error(err.Error(), "retry_in", retryIn)
		case news:
			s.log.Warn("kinetic: cannot connect", "error", err, "retry_in", retryIn)
		default:
			s.log.Debug("kinetic: cannot connect", "error", err, "retry_in", retryIn)
		}
		if news || problem == "" {
			lastLogged = time.Now()
		}
		lastProblem = problem
		if !s.waitReconnect(ctx, delay, fl) {
			return nil
		}
	}
}

// waitReconnect waits delay before the next connection attempt, keeping the workers in line
// with the wanted discussions meanwhile. It returns false when ctx is done.
func (s *Source) waitReconnect(ctx context.Context, delay time.Duration, fl *fleet) bool {
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-s.changed:
			fl.sync(s.desired())
		case <-t.C:
			return true
		}
	}
}

// problemKey classifies an error for deciding whether it is news.
func problemKey(err error) string {
	var te *tokenError
	if errors.As(err, &te) {
		return fmt.Sprintf("token %d %t %t", te.Status, te.Refused, te.Foreign)
	}
	return err.Error()
}

// identifyError is an identify answered with ack-error even with a fresh token.
type identifyError struct{ payload string }

func (e *identifyError) Error() string {
	return "kinetic: identify refused: " + e.payload
}

const tagIdentify = "identify"

// session runs one connection: identify, subscribe, dispatch frames until the connection
// or ctx ends. identifiedAt is zero if it never got identified.
func (s *Source) session(ctx context.Context, fl *fleet) (identifiedAt time.Time, err error) {
	// A token first: with refused credentials there is no point in connecting.
	if _, err := s.tokens.Token(ctx); err != nil {
		return time.Time{}, err
	}
	c, err := dial(ctx, s.dial)
	if err != nil {
		return time.Time{}, err
	}
	ss := &session{s: s, c: c, fleet: fl, subs: map[string]*subscription{}, leaving: map[string]int{},
		firstRound: map[string]bool{}, due: map[string]time.Time{},
		queued: map[string]bool{}, inflight: map[string]sentSubscribe{},
		window: newSubscribeWindow(s.cfg.SubscribesInFlight, s.dial.ackTimeout)}
	defer func() {
		c.close()
		// Frames read before the end are still in order: hand them over, not lose them.
		for drained := false; !drained; {
			select {
			case in := <-c.in:
				ss.handle(in)
			default:
				drained = true
			}
		}
		ss.stopRestWatch()
		ss.setSubscribing(false)
		s.st.mu.Lock()
		s.st.identified = false
		for _, d := range s.st.discussions {
			d.State = StateIdle
		}
		s.st.mu.Unlock()
	}()

	tok, err := ss.identify(ctx)
	if err != nil {
		return time.Time{}, err
	}
	ss.renewAt = renewalTime(tok.Expiry, time.Now())
	identifiedAt = time.Now()
	s.st.mu.Lock()
	s.st.identified = true
	s.st.connects++
	s.st.lastErr = ""
	s.st.mu.Unlock()
	s.log.Info("kinetic: connected", "url", s.dial.url, "user", s.tokens.Username())

	// The wanted set as it is now; a change from here on is pending on s.changed and
	// handled by the loop.
	want := s.desired()
	fl.sync(want)
	for _, w := range want {
		if s.isRemoved(w.id) {
			ss.subs[w.id] = &subscription{state: subRemoved}
			s.st.update(w.id, func(d *DiscussionStatus) { d.State = StateRemoved })
			continue
		}
		ss.firstRound[w.id] = true
		ss.firstTotal++
		ss.subscribe(w.id)
	}
	err = ss.loop(ctx)
	if errors.Is(err, errTokenRenewal) {
		// The next connection identifies with a fresh token, not this one about to expire.
		s.tokens.Invalidate(tok.AccessToken)
	}
	return identifiedAt, err
}

// session is the state of one connection, owned by the goroutine running Source.session.
type session struct {
	s          *Source
	c          *conn
	fleet      *fleet
	subs       map[string]*subscription // the wanted discussions, as subscribed on this connection
	leaving    map[string]int           // unsubscribes awaiting their ack, by discussion
	seq        uint64                   // numbers subscribe tags
	firstRound map[string]bool          // subscribes of the first round still awaiting their ack
	firstTotal int                      // size of the first round
	okCount    int                      // acks of the first round that were ack-ok
	due        map[string]time.Time     // subscribes to retry, and when
	timer      *time.Timer
	restTick   *time.Ticker // while waiting for the first round's catch-ups to end (see watchRest)

	// Subscribes are paced: at most window.size await their ack; the rest wait in queue.
	queue      []string                 // discussions whose subscribe is not sent yet, in order
	queued     map[string]bool          // the discussions in queue
	inflight   map[string]sentSubscribe // the subscribes sent and neither answered nor timed out, by tag
	window     subscribeWindow
	slowLogged bool // a slow subscribe ack was logged on this connection

	renewAt time.Time // when to reconnect with a fresh token (see renewalTime)
}

// errTokenRenewal ends a connection shortly before its identity's token expires: a server
// may silently stop sending to an expired identity (protocol §9.2), so the next connection
// identifies with a fresh token and catches up, rather than trusting this one.
var errTokenRenewal = errors.New("kinetic: the token is about to expire; reconnecting with a fresh one")

// renewalTime is when a connection identified with a token valid until expiry (which has
// the token source's early margin taken off already) reconnects: before expiry by a random
// part of a tenth of the time left, at most a minute, so that sources started together do
// not all reconnect at once.
func renewalTime(expiry, now time.Time) time.Time {
	left := expiry.Sub(now)
	if left <= 0 {
		return now
	}
	spread := min(left/10, time.Minute)
	return expiry.Add(-rand.N(spread + 1))
}

// identify sends identify and waits for its ack. An ack-error gets one more try with a
// fresh token: the cached one may have been revoked or expired early.
func (ss *session) identify(ctx context.Context) (*oauth2.Token, error) {
	s := ss.s
	for attempt := 0; ; attempt++ {
		tok, err := s.tokens.Token(ctx)
		if err != nil {
			return nil, err
		}
		if err := ss.c.request(actIdentify, map[string]string{"token": tok.AccessToken}, tagIdentify); err != nil {
			return nil, err
		}
		f, err := ss.await(ctx, tagIdentify)
		if err != nil {
			return nil, err
		}
		if f.Event == evAckOK {
			return tok, nil
		}
		s.tokens.Invalidate(tok.AccessToken)
		if attempt > 0 {
			return nil, &identifyError{payload: payloadText(f.Payload)}
		}
		s.log.Info("kinetic: identify refused, retrying with a fresh token", "answer", payloadText(f.Payload))
	}
}

// await handles frames until the ack tagged tag arrives.
func (ss *session) await(ctx context.Context, tag string) (frame, error) {
	for {
		select {
		case <-ctx.Done():
			return frame{}, ctx.Err()
		case <-ss.c.done:
			// The ack may have come just before the server closed: it decides what next
			// (an ack-error must invalidate the token).
			for {
				select {
				case in := <-ss.c.in:
					if in.tag == tag {
						return in.f, nil
					}
					ss.handle(in)
				default:
					return frame{}, ss.c.reason()
				}
			}
		case in := <-ss.c.in:
			if in.tag == tag {
				return in.f, nil
			}
			ss.handle(in)
		}
	}
}

// sentSubscribe is a subscribe awaiting its answer: its number and when it was sent.
type sentSubscribe struct {
	seq uint64
	at  time.Time
}

// subscribe asks for a subscription to id: the subscribe is queued and sent when fewer than
// the window's size are awaiting their ack.
func (ss *session) subscribe(id string) {
	ss.subs[id] = &subscription{state: subPending}
	if w := ss.fleet.byID[id]; w != nil {
		w.hold()
	}
	ss.s.st.update(id, func(d *DiscussionStatus) { d.State = StateSubscribing })
	ss.enqueue(id)
	ss.pump()
}

func (ss *session) enqueue(id string) {
	if !ss.queued[id] {
		ss.queued[id] = true
		ss.queue = append(ss.queue, id)
	}
}

// pump sends queued subscribes while fewer than the window's size await their ack. A send
// fails only when the connection has ended, which the loop sees on c.done.
func (ss *session) pump() {
	for len(ss.inflight) < ss.window.size && len(ss.queue) > 0 {
		id := ss.queue[0]
		ss.queue[0] = ""
		ss.queue = ss.queue[1:]
		delete(ss.queued, id)
		sub := ss.subs[id]
		if sub == nil || sub.state != subPending || sub.sent {
			continue // no longer wanted, or answered (a late ack) while waiting for a retry
		}
		ss.seq++
		sub.tag = "subscribe:" + strconv.FormatUint(ss.seq, 10) + ":" + id
		sub.sent = true
		if sub.firstSeq == 0 {
			sub.firstSeq = ss.seq
		}
		ss.inflight[sub.tag] = sentSubscribe{seq: ss.seq, at: time.Now()}
		if ss.c.requestSoft(actSubscribe, map[string]string{"topic": discussionTopic(id)}, sub.tag) != nil {
			return
		}
	}
	if len(ss.queue) == 0 {
		ss.queue = nil // let the backing array go
	}
	ss.setSubscribing(len(ss.queue) > 0)
}

// setSubscribing publishes whether subscribes are queued (see Source.subscribing).
func (ss *session) setSubscribing(queued bool) {
	cur := ss.s.subscribing.Load()
	switch {
	case queued && cur == nil:
		ch := make(chan struct{})
		ss.s.subscribing.Store(&ch)
	case !queued && cur != nil:
		ss.s.subscribing.Store(nil)
		close(*cur)
	}
}

// tagSeq returns the sequence number of a subscribe tag (0 if it has none).
func tagSeq(tag string) uint64 {
	rest, _ := strings.CutPrefix(tag, "subscribe:")
	n, _, _ := strings.Cut(rest, ":")
	seq, _ := strconv.ParseUint(n, 10, 64)
	return seq
}

// subscribeTimedOut handles a subscribe not acknowledged within ack_timeout. A healthy
// connection is not dropped for it (the heartbeat's read deadline judges the connection):
// the discussion is subscribed again, behind the others queued. Whichever of its subscribes
// is acknowledged first is the answer (see subscribed).
func (ss *session) subscribeTimedOut(tag, id string) {
	sub := ss.subs[id]
	if sub == nil || sub.tag != tag || sub.state != subPending {
		return // answered meanwhile, or no longer wanted
	}
	level := slog.LevelDebug
	if !ss.slowLogged { // one line per connection: a slow server makes many
		ss.slowLogged = true
		level = slog.LevelWarn
	}
	ss.s.log.Log(context.Background(), level, "kinetic: subscribe not acknowledged in time, sending it again",
		"discussion", id, "ack_timeout", ss.s.dial.ackTimeout, "in_flight", len(ss.inflight), "window", ss.window.size, "queued", len(ss.queue))
	sub.sent = false
	ss.enqueue(id)
}

func (ss *session) loop(ctx context.Context) error {
	ss.timer = time.NewTimer(time.Hour)
	ss.timer.Stop()
	defer ss.timer.Stop()
	defer ss.stopRestWatch()
	renew := time.NewTimer(max(time.Until(ss.renewAt), 0))
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-renew.C:
			return errTokenRenewal
		case <-ss.c.done:
			return ss.c.reason()
		case in := <-ss.c.in:
			ss.handle(in)
		case <-ss.s.changed:
			if err := ss.reconcile(); err != nil {
				return err
			}
			ss.pump()
		case <-ss.restC():
			ss.checkRest()
		case <-ss.timer.C:
			now := time.Now()
			for id, at := range ss.due {
				if !at.After(now) {
					delete(ss.due, id)
					if sub := ss.subs[id]; sub == nil || sub.state != subWaiting {
						continue
					}
					ss.subscribe(id)
				}
			}
			ss.armTimer()
		}
	}
}

// retryLater schedules a subscribe of id on the slow schedule.
func (ss *session) retryLater(id string) {
	ss.due[id] = time.Now().Add(ss.s.t.resubscribe)
	ss.armTimer()
}

func (ss *session) armTimer() {
	if ss.timer == nil {
		return
	}
	var next time.Time
	for _, at := range ss.due {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	ss.timer.Stop()
	if !next.IsZero() {
		ss.timer.Reset(max(time.Until(next), 0))
	}
}

// handle dispatches one inbound frame. Events go to their discussion's queue; the only wait
// is paceLive's, for the store, while it is the bottleneck.
func (ss *session) handle(in inbound) {
	s := ss.s
	if in.err != nil {
		s.bad.badInput(badKind(in.err), in.err, "frame", truncate(string(in.raw), 200))
		return
	}
	f := in.f
	if rest, ok := strings.CutPrefix(in.tag, "subscribe:"); ok {
		_, id, _ := strings.Cut(rest, ":")
		if sent, ok := ss.inflight[in.tag]; ok {
			delete(ss.inflight, in.tag)
			if in.timedOut {
				ss.window.timedOut(sent.seq, ss.seq)
			} else {
				ss.window.answered(sent.seq, time.Since(sent.at), ss.seq)
			}
			defer ss.pump() // a slot is free
		}
		if in.timedOut {
			ss.subscribeTimedOut(in.tag, id)
		} else {
			ss.subscribed(in.tag, id, f)
		}
		return
	}
	if in.timedOut {
		return // soft requests are subscribes only
	}
	if id, ok := strings.CutPrefix(in.tag, "unsubscribe:"); ok {
		ss.unsubscribeAcked(id, f)
		return
	}
	hf, err := s.dec.classify(f, time.Now())
	if err != nil {
		s.bad.badInput(badKind(err), err, "topic", truncate(f.Topic, 100))
		return
	}
	switch hf.kind {
	case frameAck, framePresence:
		// Acks without a pending request are heartbeat acks or came after their timeout
		// ended a connection; presence says who else is looking.
		return
	case frameUnsubscribed:
		ss.unsubscribed(hf.discussion)
		return
	}
	if ss.leaving[hf.discussion] > 0 {
		// Sent before the server saw our unsubscribe: no longer wanted (or, if wanted
		// again, caught up after the new subscribe's ack).
		return
	}
	w := ss.fleet.byID[hf.discussion]
	if w == nil {
		s.bad.badInput(badDiscussion, bad(badDiscussion, "%s for discussion %s", f.Event, hf.discussion), "discussion", hf.discussion)
		return
	}
	ss.fleet.paceLive()
	w.live(hf.decoded.lazy) // the source's decoder defers every event (see decoder.deferEvents)
}

// subscribed handles the ack of the subscribe tagged tag.
func (ss *session) subscribed(tag, id string, f frame) {
	s := ss.s
	sub := ss.subs[id]
	if sub == nil || sub.state != subPending || sub.firstSeq == 0 || tagSeq(tag) < sub.firstSeq {
		// Answered already (by another subscribe of the same discussion: one that timed
		// out and its retry), or the discussion was dropped (and maybe wanted again, its
		// new subscribe maybe still queued) since: an unsubscribe, or a newer subscribe,
		// follows this one.
		return
	}
	first := ss.firstRound[id]
	delete(ss.firstRound, id)
	w := ss.fleet.byID[id]
	if w == nil {
		// The wanted set changed while the subscribe was in flight and its reconcile has not
		// run yet: bring the workers up to date now, so that a discussion still wanted gets
		// its catch-up (the reconcile will not subscribe it again), and one no longer wanted
		// is left to the reconcile's unsubscribe.
		ss.fleet.sync(ss.s.desired())
		if w = ss.fleet.byID[id]; w == nil {
			if first {
				ss.firstRoundDone()
			}
			return
		}
	}
	if f.Event == evAckOK {
		sub.state = subOK
		s.st.update(id, func(d *DiscussionStatus) { d.State, d.Error, d.CaughtUp = StateSubscribed, "", false })
		// Queued here, on the reader's order, so that every live event of the discussion
		// that follows the ack is handled after the catch-up.
		w.catchUp()
		if first {
			ss.okCount++
		} else {
			s.log.Info("kinetic: subscribed", "discussion", id)
		}
	} else {
		sub.state = subWaiting
		w.release()
		w.settle(ss.fleet.ctx) // its "now" is its own subscribe's, whenever it is allowed
		answer := payloadText(f.Payload)
		again := false
		s.st.mu.Lock()
		s.st.refusals++
		s.st.mu.Unlock()
		s.st.update(id, func(d *DiscussionStatus) {
			again = d.Error == answer
			d.State, d.Error = StateRefused, answer
		})
		level := slog.LevelWarn
		if again { // the same refusal as last time is no news
			level = slog.LevelDebug
		}
		s.log.Log(context.Background(), level, "kinetic: subscribe refused", "discussion", id, "answer", answer, "retry_in", s.t.resubscribe)
		ss.retryLater(id)
	}
	if first {
		ss.firstRoundDone()
	}
}

// firstRoundDone logs the outcome of the connection's first round of subscribes once every
// one of them is answered: one line, not one per discussion.
func (ss *session) firstRoundDone() {
	if len(ss.firstRound) == 0 && ss.firstTotal > 0 {
		ss.s.log.Info("kinetic: subscribed", "subscribed", ss.okCount, "of", ss.firstTotal,
			"window_peak", ss.window.peak, "window_shrunk", ss.window.shrunk)
		ss.firstTotal = 0
		ss.watchRest()
	}
}

// unsubscribed handles a server-initiated end of a subscription: someone removed
// kdbridge's user from the discussion. That is final — subscribing again would add the user
// back against that decision — so the discussion is marked removed and left alone until a
// reload, or until discovery or the configuration wants it again after no longer wanting
// it (see RetryRemoved).
func (ss *session) unsubscribed(id string) {
	s := ss.s
	if ss.leaving[id] > 0 {
		return // the end we asked for
	}
	sub := ss.subs[id]
	if sub == nil {
		s.bad.badInput(badDiscussion, bad(badDiscussion, "unsubscribed from discussion %s", id), "discussion", id)
		return
	}
	sub.state = subRemoved
	delete(ss.due, id)
	s.markRemoved(id)
	s.st.mu.Lock()
	s.st.evictions++
	s.st.mu.Unlock()
	s.st.update(id, func(d *DiscussionStatus) { d.State, d.CaughtUp = StateRemoved, false })
	s.log.Warn("kinetic: removed from the discussion by the server (unsubscribed); not subscribing again until a reload",
		"discussion", id)
}

// payloadText renders an ack-error payload for a log line: a string as is, anything else
// as compact JSON.
func payloadText(p json.RawMessage) string {
	if s, ok := jsonString(p); ok {
		return truncate(s, 200)
	}
	return truncate(compactJSON(p), 200)
}
