// Package kinetic is the sink that writes replies typed in Slack into Kinetic discussions,
// as kdbridge's integration user, through the Discussions REST API: a new message is a POST
// of content tokens (a reply to a Kinetic message carries its parent), an edit a PUT of the
// new content, a delete a DELETE. Where each Slack message went is kept in the bridge's store
// (Slack channel and ts → Kinetic message id), so that edits and deletes find their copy
// after a restart. It takes events with bridge.Event.Inbound set (sources/slack makes them);
// the author is shown in the text ("**Alice (Slack)**: …"), since the message is posted as
// the integration user, whose own messages the Kinetic source never routes back out.
//
// Failures are classified for the dispatcher: a 401 gets one fresh token and one more try at
// once; other 4xx are permanent (dead letter, with Kinetic's reason); 429, 5xx and network
// failures are retried by the dispatcher with backoff.
package kinetic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
	kineticsrc "github.com/kdbridge/kdbridge/sources/kinetic"
)

// MaxText is the longest message text, in bytes, the sink writes into Kinetic. The
// Discussions API documents no limit; this one is far above anything a person types in
// Slack (40,000 characters) yet keeps a runaway message out of a discussion.
const MaxText = 64 << 10

// DefaultAuthor is the default template of the line's start that names the Slack author.
const DefaultAuthor = "**{{.Name}} (Slack)**: "

// DefaultTimeout bounds one REST call.
const DefaultTimeout = 15 * time.Second

// maxAnswer bounds a REST answer read for an error detail or a message id.
const maxAnswer = 1 << 20

// Space is one Kinetic space the sink writes into: the Kinetic source of that name.
type Space struct {
	URL          string        // the space URL, as the source's url
	ClientID     string        // the integration user
	ClientSecret config.Secret // its secret
}

// Config is the sink's configuration: made by cmd/kdbridge from the Kinetic sources, not
// written by hand.
type Config struct {
	Spaces map[string]Space // by Kinetic source name
	// Authors are the templates of the line's start that names the author, by Slack sink
	// (the sink's reply_author): text/templates over .Name (the display name, Markdown-
	// escaped, one line) and .Username (the Slack user id). A sink without one gets
	// DefaultAuthor.
	Authors map[string]string
	Timeout time.Duration // per REST call; default DefaultTimeout
}

// KV is what the sink needs from the store. bridge.Store satisfies it.
type KV interface {
	Get(ctx context.Context, namespace, key string) ([]byte, bool, error)
	Put(ctx context.Context, namespace, key string, value []byte) error
}

// Options are what the process gives the sink.
type Options struct {
	Logger     *slog.Logger // default: discard
	KV         KV           // the message map; required
	HTTPClient *http.Client // default: a client of the sink's own
}

// Sink writes Slack replies into Kinetic.
type Sink struct {
	name    string
	spaces  map[string]*space
	author  *template.Template            // the default
	authors map[string]*template.Template // by Slack sink
	timeout time.Duration
	kv      KV
	log     *slog.Logger
	http    *http.Client
	ownHTTP bool
}

type space struct {
	base   string // <space>/app/discussions/api/v1
	tokens *kineticsrc.Tokens
	secret string // for redaction only
}

var _ bridge.Sink = (*Sink)(nil)

// New builds the sink; it makes no network calls.
func New(name string, cfg Config, opts Options) (*Sink, error) {
	if opts.KV == nil {
		return nil, errors.New("kinetic sink: Options.KV is required: edits and deletes need the message map")
	}
	author, err := parseAuthor(DefaultAuthor)
	if err != nil {
		return nil, err
	}
	authors := map[string]*template.Template{}
	for sink, src := range cfg.Authors {
		if src == "" {
			continue
		}
		if authors[sink], err = parseAuthor(src); err != nil {
			return nil, fmt.Errorf("kinetic sink: reply_author of %s: %w", sink, err)
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{name: name, spaces: map[string]*space{}, author: author, authors: authors, timeout: cfg.Timeout, kv: opts.KV,
		log: log, http: opts.HTTPClient}
	if s.http == nil {
		s.http, s.ownHTTP = &http.Client{}, true
	}
	for src, sp := range cfg.Spaces {
		u := strings.TrimRight(sp.URL, "/")
		s.spaces[src] = &space{base: u + "/app/discussions/api/v1", tokens: kineticsrc.NewTokens(u, sp.ClientID, sp.ClientSecret, s.http),
			secret: sp.ClientSecret.Reveal()}
	}
	return s, nil
}

// Name returns the sink's name.
func (s *Sink) Name() string { return s.name }

// MaxInFlight is how many deliveries may run at once: one per discussion is the rule, a few
// discussions at once are plenty for what people type.
func (s *Sink) MaxInFlight() int { return 4 }

// Close releases idle connections of the sink's own client.
func (s *Sink) Close() error {
	if s.ownHTTP {
		s.http.CloseIdleConnections()
	}
	return nil
}

// Namespace is the KV namespace of the sink named name.
func Namespace(name string) string { return "kinetic/" + name }

// copyOf is where a Slack message went in Kinetic.
type copyOf struct {
	Discussion string `json:"discussion"`
	Message    string `json:"message"`
	Deleted    bool   `json:"deleted,omitempty"`
}

func mapKey(in *bridge.Inbound) string {
	return "slack/" + in.Sink + "/" + in.Channel + "/" + in.TS
}

// Deliver writes one inbound event into its discussion.
func (s *Sink) Deliver(ctx context.Context, d bridge.Delivery) error {
	e := d.Event
	in := e.Inbound
	if in == nil || e.Message == nil || e.Discussion.ID == "" {
		return bridge.Permanent(fmt.Errorf("kinetic sink: event %s is not a reply from a chat", e.ID))
	}
	sp, ok := s.spaces[in.Kinetic]
	if !ok {
		return bridge.Permanent(fmt.Errorf("kinetic sink: no Kinetic source %q to write discussion %s into", in.Kinetic, e.Discussion.ID))
	}
	key := mapKey(in)
	var c copyOf
	known, err := s.load(ctx, key, &c)
	if err != nil {
		return err
	}
	switch e.Type {
	case bridge.MessageCreated:
		if known {
			return nil // posted by an earlier attempt whose success was not recorded
		}
		return s.create(ctx, sp, key, e)
	case bridge.MessageUpdated:
		switch {
		case !known:
			return s.create(ctx, sp, key, e)
		case c.Deleted:
			return nil
		}
		content, err := s.content(e)
		if err != nil {
			return err
		}
		path := "/discussions/" + url.PathEscape(c.Discussion) + "/messages/" + url.PathEscape(c.Message)
		_, err = s.call(ctx, sp, http.MethodPut, path, map[string]any{"content": content})
		return err
	case bridge.MessageDeleted:
		if !known || c.Deleted {
			return nil
		}
		path := "/discussions/" + url.PathEscape(c.Discussion) + "/messages/" + url.PathEscape(c.Message)
		if _, err := s.call(ctx, sp, http.MethodDelete, path, nil); err != nil && !notFound(err) {
			return err
		}
		c.Deleted = true
		return s.save(ctx, key, c)
	default:
		return nil
	}
}

func (s *Sink) create(ctx context.Context, sp *space, key string, e bridge.Event) error {
	content, err := s.content(e)
	if err != nil {
		return err
	}
	body := map[string]any{"content": content}
	if p := e.Message.ParentID; p != "" {
		body["parent"] = map[string]string{"id": p}
	}
	ans, err := s.call(ctx, sp, http.MethodPost, "/discussions/"+url.PathEscape(e.Discussion.ID)+"/messages", body)
	if err != nil {
		return err
	}
	var r struct {
		Message struct {
			ID string `json:"id"`
		} `json:"message"`
	}
	if json.Unmarshal(ans, &r) != nil || r.Message.ID == "" {
		return bridge.Permanent(fmt.Errorf("kinetic sink: the answer to creating a message in %s has no message id", e.Discussion.ID))
	}
	if err := s.save(ctx, key, copyOf{Discussion: e.Discussion.ID, Message: r.Message.ID}); err != nil {
		return fmt.Errorf("%w (the message was created as %s; a retry creates it again)", err, r.Message.ID)
	}
	s.log.Debug("reply written into Kinetic", "discussion", e.Discussion.ID, "message", r.Message.ID, "event_id", e.ID)
	return nil
}

// ValidateAuthor checks a reply_author template: it parses and renders for a sample author.
func ValidateAuthor(src string) error {
	_, err := parseAuthor(src)
	return err
}

func parseAuthor(src string) (*template.Template, error) {
	t, err := template.New("reply_author").Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, err
	}
	if err := t.Execute(io.Discard, authorData{Name: "Alice", Username: "U1"}); err != nil {
		return nil, err
	}
	return t, nil
}

// authorData is what the author template sees.
type authorData struct {
	Name     string // display name, Markdown-escaped, one line
	Username string // the Slack user id
}

// content renders the message as Kinetic content tokens: one text token with the author's
// line start, the text, and one line per file (name, size, link).
func (s *Sink) content(e bridge.Event) ([]map[string]any, error) {
	m := e.Message
	var b strings.Builder
	tmpl := s.author
	if t, ok := s.authors[e.Inbound.Sink]; ok {
		tmpl = t
	}
	if err := tmpl.Execute(&b, authorData{Name: escapeMarkdown(oneLine(m.Author.Name())), Username: oneLine(m.Author.Username)}); err != nil {
		return nil, bridge.Permanent(fmt.Errorf("kinetic sink: author template: %w", err))
	}
	b.WriteString(m.Text)
	for _, a := range m.Attachments {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "📎 %s (%s)", escapeMarkdown(oneLine(a.Filename)), size(a.Size))
		if a.URL != "" {
			b.WriteString(" " + a.URL)
		}
	}
	text := b.String()
	if len(text) > MaxText {
		return nil, bridge.Permanent(fmt.Errorf("kinetic sink: the message is %d bytes, over the %d that kdbridge writes into Kinetic", len(text), MaxText))
	}
	return []map[string]any{{"type": "text", "value": text}}, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// escapeMarkdown keeps a name from formatting the line (Kinetic renders text as Markdown).
func escapeMarkdown(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_[]<>|~", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KB"
	default:
		return strconv.FormatInt(n, 10) + " bytes"
	}
}
