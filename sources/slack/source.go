// Package slack is the two-way half of the Slack sink: a source that receives what people
// type in the Slack threads kdbridge mirrors, over Socket Mode (an outbound WebSocket, no
// public URL), and emits it as bridge events for the Kinetic sink to write into the
// discussion. Only replies in threads that the sink posted for a two-way route take part;
// kdbridge's own posts (its bot id and app id) are never taken back. An envelope is
// acknowledged to Slack only after its event was stored (Emit returned nil): Slack sends
// what was not acknowledged again, and the store drops what it has seen (the event id is
// derived from Slack's event_id).
package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	slacksink "github.com/kdbridge/kdbridge/sinks/slack"
)

// Config is what the source takes from the Slack sink it serves and from the routes.
type Config struct {
	Sink     string        // the Slack sink whose threads take part
	Token    config.Secret // the sink's bot token: auth.test, users.info
	AppToken config.Secret // the app-level token: apps.connections.open
	APIURL   string        // the sink's api_url ("" for Slack's)
	Routes   []string      // the routes whose threads are two-way
	Timeout  time.Duration // per Web API call; default 15s
	MaxText  int           // longest text, in bytes, that the far side takes; 0: no limit
}

// Options are what the process gives the source.
type Options struct {
	Logger *slog.Logger // default: discard
	// KV is the store holding the Slack sink's message map (read only here); required.
	KV slacksink.KV
	// HTTPClient carries the Web API calls and the WebSocket dial's proxy settings; default
	// a client of its own.
	HTTPClient *http.Client
}

// Outcomes of an inbound event, as Stats counts them.
const (
	OutcomeBridged     = "bridged"     // stored for delivery into Kinetic
	OutcomeOwn         = "own"         // kdbridge's own post (its bot or app): no echo
	OutcomeUnmirrored  = "unmirrored"  // not a reply in a thread kdbridge mirrors
	OutcomeOneWay      = "one_way"     // in a mirrored thread whose route is not two-way
	OutcomeUnsupported = "unsupported" // an event or message subtype that is not bridged
	OutcomeUnchanged   = "unchanged"   // an edit that did not change the text or files
	OutcomeMalformed   = "malformed"   // a frame or payload that could not be read
	OutcomeTooLarge    = "too_large"   // longer than Kinetic takes
)

// Outcomes lists every outcome, in a stable order.
var Outcomes = []string{OutcomeBridged, OutcomeOwn, OutcomeUnmirrored, OutcomeOneWay, OutcomeUnsupported,
	OutcomeUnchanged, OutcomeMalformed, OutcomeTooLarge}

// Connection states, as Status reports them.
const (
	StateStarting     = "starting"
	StateConnecting   = "connecting"
	StateConnected    = "connected"
	StateDisconnected = "disconnected"
	StateStopped      = "stopped" // a permanent failure: the configuration must change
)

// Status is a snapshot of the source for /readyz and metrics.
type Status struct {
	State     string
	Since     time.Time
	LastError string
	Events    map[string]uint64 // by outcome
	Connects  uint64            // successful Socket Mode connections
}

// Source receives Slack replies over Socket Mode.
type Source struct {
	name   string
	cfg    Config
	kv     slacksink.KV
	log    *slog.Logger
	http   *http.Client
	routes map[string]bool
	users  *users
	bad    *rateLog
	roots  recent // top-level posts of kdbridge's own seen lately

	mu sync.Mutex
	st Status
}

var _ bridge.Source = (*Source)(nil)

// Name is the source name of the inbound half of the Slack sink named sink.
func Name(sink string) string { return "slack:" + sink }

// New builds the source; it makes no network calls.
func New(cfg Config, opts Options) (*Source, error) {
	if cfg.Sink == "" || !cfg.Token.IsSet() || !cfg.AppToken.IsSet() {
		return nil, errors.New("slack replies: the sink name, its bot token and its app_token are required")
	}
	if opts.KV == nil {
		return nil, errors.New("slack replies: Options.KV is required: the message map tells which threads are mirrored")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{name: Name(cfg.Sink), cfg: cfg, kv: opts.KV, http: opts.HTTPClient, routes: map[string]bool{}}
	s.log = log.With("source", s.name)
	for _, r := range cfg.Routes {
		s.routes[r] = true
	}
	if s.http == nil {
		s.http = &http.Client{}
	}
	s.st = Status{State: StateStarting, Since: time.Now(), Events: map[string]uint64{}}
	s.bad = newRateLog(s.log, time.Minute)
	return s, nil
}

// Name returns the source's name: "slack:" and the sink's.
func (s *Source) Name() string { return s.name }

// Status returns a snapshot of the connection and the counters.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Events = make(map[string]uint64, len(s.st.Events))
	for k, v := range s.st.Events {
		st.Events[k] = v
	}
	return st
}

func (s *Source) count(outcome string) {
	s.mu.Lock()
	s.st.Events[outcome]++
	s.mu.Unlock()
}

// setState records a connection state and logs the change, once per change.
func (s *Source) setState(state string, err error) {
	s.mu.Lock()
	changed := s.st.State != state
	if changed {
		s.st.State, s.st.Since = state, time.Now()
	}
	if err != nil {
		s.st.LastError = s.redact(err.Error())
	} else if state == StateConnected {
		s.st.LastError = ""
		s.st.Connects++
	}
	lastErr := s.st.LastError
	s.mu.Unlock()
	if !changed {
		return
	}
	switch state {
	case StateConnected:
		s.log.Info("Socket Mode connected: replies from Slack are bridged")
	case StateStopped:
		s.log.Error("Socket Mode stopped; fix the app token and reload", "err", lastErr)
	case StateDisconnected:
		s.log.Warn("Socket Mode disconnected; reconnecting", "err", lastErr)
	default:
		s.log.Info("Socket Mode " + state)
	}
}

func (s *Source) redact(text string) string {
	return config.Redact(text, s.cfg.Token.Reveal(), s.cfg.AppToken.Reveal())
}

// identity is who kdbridge is in the workspace: its posts are never taken back.
type identity struct {
	botID, userID, appID string
}

// Run connects with Socket Mode and bridges replies until ctx ends. Bad tokens are a
// PermanentError; anything else returns an error that a restart may cure.
func (s *Source) Run(ctx context.Context, emit bridge.Emitter) error {
	apiOpts := []slackgo.Option{slackgo.OptionHTTPClient(s.http), slackgo.OptionAppLevelToken(s.cfg.AppToken.Reveal())}
	if s.cfg.APIURL != "" {
		apiOpts = append(apiOpts, slackgo.OptionAPIURL(s.cfg.APIURL))
	}
	api := slackgo.New(s.cfg.Token.Reveal(), apiOpts...)
	s.users = newUsers(api, s.cfg.Timeout)

	callCtx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	auth, err := api.AuthTestContext(callCtx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		fatal := fatalAuth(err)
		err = fmt.Errorf("slack replies: auth.test with the bot token: %s", s.redact(err.Error()))
		if fatal {
			s.setState(StateStopped, err)
			return bridge.Permanent(err)
		}
		s.setState(StateDisconnected, err)
		return err
	}
	me := identity{botID: auth.BotID, userID: auth.UserID}

	client := socketmode.New(api, socketmode.OptionLog(debugLog{s.log}))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- client.RunContext(runCtx) }()
	defer func() { stop(); <-runErr }()

	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-runErr:
			runErr <- err // for the deferred wait
			if ctx.Err() != nil {
				return nil
			}
			fatal := fatalAuth(err)
			err = fmt.Errorf("slack replies: socket mode: %s", s.redact(err.Error()))
			if fatal {
				s.setState(StateStopped, err)
				return bridge.Permanent(err)
			}
			s.setState(StateDisconnected, err)
			return err
		case evt := <-client.Events:
			if err := s.handle(ctx, client, emit, &me, evt); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.setState(StateDisconnected, err)
				return err
			}
		}
	}
}

// fatalAuth reports whether Slack refused a token: retrying cannot help.
func fatalAuth(err error) bool {
	var se slackgo.SlackErrorResponse
	if errors.As(err, &se) {
		return slices.Contains([]string{"invalid_auth", "not_authed", "account_inactive", "token_revoked",
			"not_allowed_token_type", "missing_scope"}, se.Err)
	}
	var sc slackgo.StatusCodeError
	return errors.As(err, &sc) && sc.Code == http.StatusNotFound
}

// handle deals with one event of the Socket Mode client. An error stops Run (the store
// failed): nothing is acknowledged that was not stored.
func (s *Source) handle(ctx context.Context, client *socketmode.Client, emit bridge.Emitter, me *identity, evt socketmode.Event) error {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		s.setState(StateConnecting, nil)
	case socketmode.EventTypeConnectionError:
		var err error = errors.New("connection failed")
		if ce, ok := evt.Data.(*slackgo.ConnectionErrorEvent); ok && ce.ErrorObj != nil {
			err = ce.ErrorObj
		}
		s.setState(StateDisconnected, err)
	case socketmode.EventTypeInvalidAuth:
		s.setState(StateStopped, errors.New("the app token was refused (invalid_auth)"))
	case socketmode.EventTypeConnected:
		s.setState(StateConnected, nil)
	case socketmode.EventTypeHello:
		if evt.Request != nil && evt.Request.ConnectionInfo.AppID != "" {
			me.appID = evt.Request.ConnectionInfo.AppID
		}
	case socketmode.EventTypeIncomingError:
		s.bad.report(s, OutcomeMalformed, "an unreadable Socket Mode frame", nil)
	case socketmode.EventTypeErrorBadMessage:
		// slack-go could not parse it (garbage, an unknown envelope or event type): it is
		// not acknowledged by the library, so acknowledge it here when it has an envelope
		// id, or Slack sends it again and again.
		var raw json.RawMessage
		if bm, ok := evt.Data.(*socketmode.ErrorBadMessage); ok {
			raw = bm.Message
		}
		var env struct {
			EnvelopeID string          `json:"envelope_id"`
			Type       string          `json:"type"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(raw, &env) != nil {
			s.bad.report(s, OutcomeMalformed, "an unreadable Socket Mode frame", nil)
			return nil
		}
		if env.Type == socketmode.RequestTypeEventsAPI && env.EnvelopeID != "" {
			// An Events API envelope that slack-go does not know the event type of: ours
			// to judge.
			if err := s.envelope(ctx, emit, me, env.EnvelopeID, env.Payload); err != nil {
				return err
			}
		} else {
			s.bad.report(s, OutcomeUnsupported, "a Socket Mode envelope that is not bridged", nil, "type", env.Type)
		}
		if env.EnvelopeID != "" {
			return s.ack(ctx, client, env.EnvelopeID)
		}
	case socketmode.EventTypeEventsAPI:
		if evt.Request == nil {
			return nil
		}
		if err := s.envelope(ctx, emit, me, evt.Request.EnvelopeID, evt.Request.Payload); err != nil {
			return err
		}
		return s.ack(ctx, client, evt.Request.EnvelopeID)
	case socketmode.EventTypeInteractive, socketmode.EventTypeSlashCommand:
		s.bad.report(s, OutcomeUnsupported, "a Socket Mode envelope that is not bridged", nil, "type", string(evt.Type))
		if evt.Request != nil {
			return s.ack(ctx, client, evt.Request.EnvelopeID)
		}
	}
	return nil
}

func (s *Source) ack(ctx context.Context, client *socketmode.Client, envelopeID string) error {
	// The client queues acknowledgements for its connection; if none comes back in time,
	// restart rather than wait forever (the envelope is stored: a re-send is a duplicate).
	ackCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := client.AckCtx(ackCtx, envelopeID, nil); err != nil && ctx.Err() == nil {
		return fmt.Errorf("slack replies: acknowledging envelope %s: %w", envelopeID, err)
	}
	return nil
}

// envelope judges one Events API payload and stores what it bridges; nil means it may be
// acknowledged.
func (s *Source) envelope(ctx context.Context, emit bridge.Emitter, me *identity, envelopeID string, payload json.RawMessage) error {
	var p callback
	if err := json.Unmarshal(payload, &p); err != nil {
		s.bad.report(s, OutcomeMalformed, "an Events API payload that is not JSON", err, "envelope_id", envelopeID)
		return nil
	}
	if p.Type != "event_callback" || p.Event.Type != "message" {
		s.bad.report(s, OutcomeUnsupported, "an event type that is not bridged", nil, "type", p.Event.Type)
		return nil
	}
	ev, outcome, err := s.convert(ctx, me, p)
	if err != nil {
		return err
	}
	if outcome != OutcomeBridged {
		s.count(outcome)
		if outcome == OutcomeTooLarge {
			s.bad.report(nil, outcome, "a Slack message too large for Kinetic; not bridged", nil,
				"channel", p.Event.Channel, "event_id", p.EventID)
		} else {
			s.log.Debug("Slack event not bridged", "outcome", outcome, "event_id", p.EventID, "channel", p.Event.Channel)
		}
		return nil
	}
	if err := emit.Emit(ctx, ev); err != nil {
		return fmt.Errorf("slack replies: storing event %s: %w", p.EventID, err)
	}
	s.count(OutcomeBridged)
	s.log.Debug("reply from Slack stored", "event_id", ev.ID, "slack_event_id", p.EventID, "type", ev.Type,
		"discussion", ev.Discussion.ID)
	return nil
}

// debugLog sends slack-go's own log lines to the debug level.
type debugLog struct{ log *slog.Logger }

func (d debugLog) Output(_ int, s string) error {
	d.log.Debug("socketmode: " + strings.TrimSpace(s))
	return nil
}
