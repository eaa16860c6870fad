// Package slack is the sink that mirrors Kinetic discussions into Slack channels with a bot
// token: one thread per discussion (or Kinetic replies as thread replies), the author's name
// and icon as the sender, edits as chat.update and deletes as chat.delete. Where each message
// went is kept in the bridge's store, so edits and deletes find their Slack copy after a
// restart. Text from a discussion is escaped so that it can never mention, broadcast or link
// on its own. Failures are classified for the dispatcher, which owns every retry: slack-go
// is used without its retry option, and a 429 becomes bridge.RetryAfter.
//
// Events other than message events: participant.created, participant.deleted,
// invitation.created and discussion.deleted are posted as a short italic line in the
// discussion's thread ("_Alice joined the discussion_"); discussion.updated renames the
// thread parent when the title changed; the others are skipped as delivered. A
// message.updated whose message was never mirrored is posted as a new message (and
// remembered); a message.deleted of one is done already.
//
// For two-way (replies from Slack, sources/slack) the sink also records what each of its
// posts mirrors (Origin, LookupOrigin), and its configuration carries the app-level token.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode"

	slackgo "github.com/slack-go/slack"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
)

// KV is what the sink needs from the store: small values by namespace and key. bridge.Store
// satisfies it.
type KV interface {
	Get(ctx context.Context, namespace, key string) ([]byte, bool, error)
	Put(ctx context.Context, namespace, key string, value []byte) error
}

// Options are what the process, not the configuration file, gives a sink.
type Options struct {
	Logger *slog.Logger // default: discard
	// KV keeps the Kinetic message → Slack ts map and the thread parents; required.
	KV KV
	// HTTPClient, if set, carries the API calls (tests, proxies). Each call is bounded by the
	// configured timeout whatever the client's own.
	HTTPClient *http.Client
	// RouteTemplates are the `template:` of route targets that name this sink: route name →
	// template source. A route's template replaces Config.Template for that route's
	// deliveries (creates and edits alike); it has the same data, functions and escaping
	// rules, and New checks it as ValidateTemplate does. An empty source is no override.
	RouteTemplates map[string]string
}

// Sink delivers events to Slack. It is safe for concurrent use.
type Sink struct {
	name      string
	cfg       Config
	c         *compiled
	api       *slackgo.Client
	http      *http.Client
	ownHTTP   bool
	kv        KV
	namespace string
	log       *slog.Logger
	redact    func(string) string // hides the token in error texts (a func: no %#v shows it)

	routeText      map[string]*template.Template // by route name; see Options.RouteTemplates
	limiters       *limiters
	stats          stats
	locks          keyedMutex
	channels       channels
	users          users
	unknownCodes   sync.Map // Slack error codes already logged
	lookupFailures sync.Map // users.lookupByEmail failure kinds already logged
}

var _ bridge.Sink = (*Sink)(nil)

// New builds a sink from a configuration. It returns the same errors Validate does (joined
// config.FieldErrors) and makes no network calls.
func New(name string, cfg Config, opts Options) (*Sink, error) {
	c, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	if opts.KV == nil {
		return nil, errors.New("slack: Options.KV is required: edits, deletes and threads need the message map")
	}
	routeText := map[string]*template.Template{}
	var errs []error
	for _, route := range slices.Sorted(maps.Keys(opts.RouteTemplates)) {
		if strings.TrimSpace(opts.RouteTemplates[route]) == "" {
			continue // no template of its own: the sink's
		}
		t, err := compileTextTemplate(opts.RouteTemplates[route])
		if err != nil {
			errs = append(errs, fmt.Errorf("slack: route %q: template: %w", route, err))
		}
		routeText[route] = t
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		name:      name,
		cfg:       c.cfg,
		c:         c,
		http:      opts.HTTPClient,
		kv:        opts.KV,
		namespace: Namespace(name),
		log:       logger.With("sink", name),
		routeText: routeText,
		limiters:  newLimiters(c.cfg.Rate, c.cfg.Burst),
		users:     users{m: map[string]*userEntry{}},
	}
	s.limiters.stats = &s.stats
	token := c.cfg.Token.Reveal()
	s.redact = func(text string) string { return config.Redact(text, token) }
	if s.http == nil {
		s.http, s.ownHTTP = &http.Client{Transport: newTransport()}, true
	}
	// Deliberately no slackgo.OptionRetry/OptionRetryConfig: they sleep and retry on 429
	// inside the call, under the dispatcher's own retries and its per-discussion pause.
	apiOpts := []slackgo.Option{slackgo.OptionHTTPClient(s.http)}
	if c.cfg.APIURL != "" {
		apiOpts = append(apiOpts, slackgo.OptionAPIURL(c.cfg.APIURL))
	}
	s.api = slackgo.New(token, apiOpts...)
	return s, nil
}

func newTransport() http.RoundTripper {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second}
}

// Name returns the sink's name from the configuration.
func (s *Sink) Name() string { return s.name }

// MaxInFlight is how many deliveries the dispatcher may run at once on this sink. Slack's
// per-channel limit is the real bound; a few in flight let other channels proceed while one
// waits for its bucket.
func (s *Sink) MaxInFlight() int { return DefaultMaxInFlight }

// Close releases idle keep-alive connections of the sink's own HTTP client.
func (s *Sink) Close() error {
	if s.ownHTTP {
		s.http.CloseIdleConnections()
	}
	return nil
}

// Deliver mirrors one event into the target's channel (the sink's channel unless the target
// names one). It returns a bridge.PermanentError for what retrying cannot fix (bad token,
// unknown channel, a message Slack will not edit), a bridge.RetryAfterError after a 429, and
// a plain error otherwise (5xx, network, timeout, the store). Error texts never carry the
// token.
func (s *Sink) Deliver(ctx context.Context, d bridge.Delivery) error {
	if err := s.deliver(ctx, d); err != nil {
		return &redactedError{err: err, redact: s.redact}
	}
	return nil
}

func (s *Sink) deliver(ctx context.Context, d bridge.Delivery) error {
	e := d.Event
	var notice string
	switch e.Type {
	case bridge.MessageCreated, bridge.MessageUpdated, bridge.MessageDeleted:
		if e.Message == nil || e.Message.ID == "" {
			return bridge.Permanent(fmt.Errorf("slack: %s event %s carries no message", e.Type, e.ID))
		}
	case bridge.DiscussionUpdated:
		if s.cfg.Threads != ThreadsDiscussion {
			return nil // no thread parent to rename
		}
	default:
		line, ok := noticeFor(e)
		if !ok {
			s.log.Debug("nothing to show in Slack for this event; skipped", "type", e.Type, "event_id", e.ID,
				"discussion", e.Discussion.ID)
			return nil
		}
		notice = line
	}

	target := d.Target.Channel
	if target == "" {
		target = s.cfg.Channel
	}
	if target == "" {
		return bridge.Permanent(errors.New("slack: no channel: set channel on the sink or on the route's target"))
	}
	ch, err := s.resolve(ctx, target)
	if err != nil {
		return err
	}
	unlock, err := s.locks.lock(ctx, ch+"\x00"+e.Source+"\x00"+e.Discussion.ID)
	if err != nil {
		return err
	}
	defer unlock()

	tmpl := s.c.text
	if t, ok := s.routeText[d.Target.Route]; ok {
		tmpl = t
	}
	switch e.Type {
	case bridge.MessageCreated:
		return s.mirror(ctx, ch, d.Target.Route, e, tmpl)
	case bridge.MessageUpdated:
		return s.edit(ctx, ch, d.Target.Route, e, tmpl)
	case bridge.MessageDeleted:
		return s.remove(ctx, ch, e)
	case bridge.DiscussionUpdated:
		return s.retitle(ctx, ch, e)
	default:
		return s.notice(ctx, ch, d.Target.Route, e, notice)
	}
}

// mirror posts a message that is not in the map yet and records where it went. A message
// that is in the map was posted by an earlier attempt whose success was not recorded by the
// dispatcher: posting it again would duplicate it in the channel.
// tmpl is the message template of the delivery's route (nil: the default rendering).
func (s *Sink) mirror(ctx context.Context, ch, route string, e bridge.Event, tmpl *template.Template) error {
	key := messageKey(ch, e.Source, e.Message.ID)
	var p posted
	if ok, err := s.load(ctx, key, &p); err != nil || ok {
		return err
	}
	o, skip, err := s.compose(ctx, e, tmpl)
	if err != nil || skip {
		return err
	}
	thread, err := s.threadFor(ctx, ch, route, e)
	if err != nil {
		return err
	}
	ts, err := s.post(ctx, ch, o, thread)
	if err != nil {
		return err
	}
	if err := s.saveOrigin(ctx, ch, ts, Origin{Route: route, Source: e.Source, Discussion: e.Discussion.ID, Message: e.Message.ID}); err != nil {
		return fmt.Errorf("%w (the message was posted as %s; a retry posts it again)", err, ts)
	}
	if err := s.save(ctx, key, posted{Channel: ch, TS: ts, ThreadTS: thread}); err != nil {
		return fmt.Errorf("%w (the message was posted as %s; a retry posts it again)", err, ts)
	}
	return nil
}

// edit updates the Slack copy of a message, or mirrors it when there is none.
func (s *Sink) edit(ctx context.Context, ch, route string, e bridge.Event, tmpl *template.Template) error {
	var p posted
	ok, err := s.load(ctx, messageKey(ch, e.Source, e.Message.ID), &p)
	switch {
	case err != nil:
		return err
	case !ok:
		s.log.Debug("edit of a message never mirrored here; posting it", "channel", ch,
			"discussion", e.Discussion.ID, "message", e.Message.ID)
		return s.mirror(ctx, ch, route, e, tmpl)
	case p.Deleted:
		return nil
	}
	o, skip, err := s.compose(ctx, e, tmpl)
	if err != nil || skip {
		return err
	}
	return s.update(ctx, p.Channel, p.TS, o)
}

// remove deletes the Slack copy of a message. A message never mirrored, or already deleted
// (also by hand in Slack: message_not_found), needs nothing more; answering success keeps a
// redelivered delete from being dead-lettered.
func (s *Sink) remove(ctx context.Context, ch string, e bridge.Event) error {
	key := messageKey(ch, e.Source, e.Message.ID)
	var p posted
	if ok, err := s.load(ctx, key, &p); err != nil || !ok || p.Deleted {
		return err
	}
	if err := s.delete(ctx, p.Channel, p.TS); err != nil {
		if errorCode(err) != "message_not_found" {
			return err
		}
		s.log.Debug("message already gone from Slack", "channel", p.Channel, "ts", p.TS)
	}
	p.Deleted = true
	return s.save(ctx, key, p)
}

// notice posts the line of a non-message event, in the discussion's thread in discussion
// mode. It is recorded by event id so that a redelivery does not post it twice.
func (s *Sink) notice(ctx context.Context, ch, route string, e bridge.Event, line string) error {
	key := "notice/" + ch + "/" + e.ID
	var p posted
	if ok, err := s.load(ctx, key, &p); err != nil || ok {
		return err
	}
	thread := ""
	if s.cfg.Threads == ThreadsDiscussion {
		var err error
		if thread, err = s.threadParent(ctx, ch, route, e); err != nil {
			return err
		}
	}
	ts, err := s.post(ctx, ch, outgoing{text: line}, thread)
	if err != nil {
		return err
	}
	if thread == "" {
		// A top-level notice can be replied to: the reply belongs to the discussion.
		if err := s.saveOrigin(ctx, ch, ts, Origin{Route: route, Source: e.Source, Discussion: e.Discussion.ID}); err != nil {
			return err
		}
	}
	return s.save(ctx, key, posted{Channel: ch, TS: ts, ThreadTS: thread})
}

// outgoing is a message as it goes to Slack.
type outgoing struct {
	text     string // escaped Slack text
	username string // "": the bot's own name
	iconURL  string // "": the bot's own icon
}

// compose renders a message event, with tmpl when it is not nil. skip is true when the
// template rendered nothing.
func (s *Sink) compose(ctx context.Context, e bridge.Event, tmpl *template.Template) (o outgoing, skip bool, err error) {
	m := e.Message
	var mention mentioner
	if s.cfg.MentionUsers == MentionEmail {
		mention = s.mention
	}
	text, files := messageParts(ctx, m, mention)
	body := joinLines(text, files)
	author := m.Author

	if s.cfg.Identity == IdentityAuthor {
		o.username = username(author.Name())
		if s.c.icon != nil {
			icon, err := executeIcon(s.c.icon, textUser{Name: author.Name(), Username: author.Username,
				DisplayName: author.DisplayName, Email: author.Email})
			if u, ok := plainHTTPURL(icon); err == nil && ok {
				o.iconURL = u
			} else if err != nil {
				s.log.Debug("icon_url template failed; posting without an icon", "error", err)
			}
		}
	}

	switch {
	case tmpl != nil:
		out, err := executeText(tmpl, s.templateData(e, text, files))
		if err != nil {
			// The same event renders the same way every time.
			return o, false, bridge.Permanent(fmt.Errorf("slack: template: %w", err))
		}
		if strings.TrimSpace(out) == "" {
			s.log.Debug("template rendered nothing; message skipped", "event_id", e.ID)
			return o, true, nil
		}
		o.text = out
	case s.cfg.Identity == IdentityBot && author.Name() != "" && m.Kind != bridge.KindSystem:
		o.text = "*" + oneLine(escapeText(author.Name())) + "*: " + body
	default:
		o.text = body
	}
	if strings.TrimSpace(o.text) == "" {
		o.text = "_(empty message)_" // Slack refuses an empty text (no_text)
	}
	o.text = truncateText(o.text, maxText)
	return o, false, nil
}

// templateData is the escaped view of a message event that a template sees.
func (s *Sink) templateData(e bridge.Event, text string, files []string) textData {
	esc := func(v string) string { return oneLine(escapeText(v)) }
	m := e.Message
	u := textUser{Name: esc(m.Author.Name()), Username: esc(m.Author.Username),
		DisplayName: esc(m.Author.DisplayName), Email: esc(m.Author.Email)}
	discURL, _ := httpURL(e.Discussion.URL)
	return textData{
		ID: esc(e.ID), Type: esc(e.Type), Source: esc(e.Source), Edited: e.Type == bridge.MessageUpdated,
		Text:       joinLines(text, files),
		Discussion: textDiscussion{ID: esc(e.Discussion.ID), Title: esc(e.Discussion.Title), URL: discURL},
		Author:     u,
		Message: textMessage{ID: esc(m.ID), ParentID: esc(m.ParentID), Kind: esc(m.Kind), Text: text,
			Attachments: files, Author: u},
	}
}

// username makes an author's name fit Slack's username field (80 characters, one line).
func username(name string) string {
	name = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(name, "")))
	if r := []rune(name); len(r) > 80 {
		name = string(r[:80])
	}
	return name
}

// callContext bounds one API call by the configured timeout.
func (s *Sink) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout.D())
}

// failed classifies an API error and, after a 429 on a channel, pauses that channel's
// limiter for as long as Slack asked.
func (s *Sink) failed(ctx context.Context, method, ch string, err error) error {
	err = s.classify(ctx, method, ch, err)
	if d, ok := bridge.RetryAfterOf(err); ok {
		s.stats.rateLimited.Add(1)
		s.limiters.channel(ch).pause(time.Now().Add(d))
		s.log.Info("Slack rate-limited the channel; pausing it", "channel", ch, "method", method, "retry_after", d)
	}
	return err
}

// textOptions make the text inert beyond what it says: no name linking, no parsing (so a
// leftover "@here" or "#general" stays text), no previews of links from a discussion.
func textOptions(text string) []slackgo.MsgOption {
	return []slackgo.MsgOption{
		slackgo.MsgOptionText(text, false), // escaped already, with our links in it
		slackgo.MsgOptionParse(false),      // parse=none
		slackgo.MsgOptionLinkNames(false),
	}
}

// post sends chat.postMessage, paced by the channel's limiter, and returns the message ts.
func (s *Sink) post(ctx context.Context, ch string, o outgoing, threadTS string) (string, error) {
	if err := s.limiters.channel(ch).wait(ctx); err != nil {
		return "", fmt.Errorf("slack %s: %w", ch, err)
	}
	opts := append(textOptions(o.text), slackgo.MsgOptionDisableLinkUnfurl(), slackgo.MsgOptionDisableMediaUnfurl())
	if threadTS != "" {
		opts = append(opts, slackgo.MsgOptionTS(threadTS))
	}
	if o.username != "" {
		opts = append(opts, slackgo.MsgOptionUsername(o.username))
	}
	if o.iconURL != "" {
		opts = append(opts, slackgo.MsgOptionIconURL(o.iconURL))
	}
	callCtx, cancel := s.callContext(ctx)
	defer cancel()
	_, ts, err := s.api.PostMessageContext(callCtx, ch, opts...)
	if err != nil {
		return "", s.failed(ctx, "chat.postMessage", ch, err)
	}
	if ts == "" {
		return "", &apiError{Method: "chat.postMessage", Channel: ch, Err: errors.New("the answer has no ts")}
	}
	return ts, nil
}

// update sends chat.update for the message ts in ch.
func (s *Sink) update(ctx context.Context, ch, ts string, o outgoing) error {
	if err := s.limiters.channel(ch).wait(ctx); err != nil {
		return fmt.Errorf("slack %s: %w", ch, err)
	}
	callCtx, cancel := s.callContext(ctx)
	defer cancel()
	_, _, _, err := s.api.UpdateMessageContext(callCtx, ch, ts, textOptions(o.text)...)
	if err != nil {
		return s.failed(ctx, "chat.update", ch, err)
	}
	return nil
}

// delete sends chat.delete for the message ts in ch.
func (s *Sink) delete(ctx context.Context, ch, ts string) error {
	if err := s.limiters.channel(ch).wait(ctx); err != nil {
		return fmt.Errorf("slack %s: %w", ch, err)
	}
	callCtx, cancel := s.callContext(ctx)
	defer cancel()
	_, _, err := s.api.DeleteMessageContext(callCtx, ch, ts)
	if err != nil {
		return s.failed(ctx, "chat.delete", ch, err)
	}
	return nil
}
