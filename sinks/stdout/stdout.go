// Package stdout is the sink that writes events to a stream (the console in `kdbridge demo`,
// a log collector in a container): one JSON line per event, or one readable line.
package stdout

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/internal/config"
)

// Output formats.
const (
	FormatJSON = "json" // the webhook envelope plus "id", one object per line (JSON Lines)
	FormatText = "text" // time, source, discussion, author and text, for people
)

// Config is a `type: stdout` entry of `sinks:`.
type Config struct {
	Format string `yaml:"format"` // json (default) or text
}

// Validate reports an unknown format.
func (c *Config) Validate() error {
	switch c.Format {
	case "", FormatJSON, FormatText:
		return nil
	}
	return config.Fieldf("format", "%q is not a format; use %q or %q", c.Format, FormatJSON, FormatText)
}

// Sink writes one line per event to a writer. Lines from concurrent deliveries never
// interleave: each is written with a single Write under a mutex.
type Sink struct {
	name string
	text bool
	mu   sync.Mutex
	w    io.Writer
}

var _ bridge.Sink = (*Sink)(nil)

// New returns a sink writing to w. An invalid format (which Validate reports) means JSON.
func New(name string, cfg Config, w io.Writer) *Sink {
	return &Sink{name: name, text: cfg.Format == FormatText, w: w}
}

// Name returns the sink's name from the configuration.
func (s *Sink) Name() string { return s.name }

// Deliver writes the event's line. A write error is retryable: the stream may be a pipe whose
// reader comes back. An event that cannot be encoded (invalid raw JSON) is permanent.
func (s *Sink) Deliver(ctx context.Context, d bridge.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var line []byte
	if s.text {
		line = textLine(d.Event)
	} else {
		env, err := d.Shared.Envelope(d.Event) // shared with other targets: copied below, not changed
		if err != nil {
			return bridge.Permanent(fmt.Errorf("stdout: encoding event %s: %w", d.Event.ID, err))
		}
		// {"id":"…", followed by the envelope's own members: the line carries the
		// idempotency key that a webhook has in its header.
		line = make([]byte, 0, len(env)+len(d.Event.ID)+16)
		line = append(line, `{"id":`...)
		line = strconv.AppendQuote(line, d.Event.ID)
		line = append(line, ',')
		line = append(line, env[1:]...)
		line = append(line, '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(line); err != nil {
		return fmt.Errorf("stdout: write: %w", err)
	}
	return nil
}

// textLine renders e for a person: "2026-11-26T17:00:00Z acme [Incident 42] Alice: text".
func textLine(e bridge.Event) []byte {
	var b strings.Builder
	b.WriteString(e.Time.UTC().Format(time.RFC3339))
	b.WriteByte(' ')
	b.WriteString(clean(e.Source))
	b.WriteString(" [")
	if e.Discussion.Title != "" {
		b.WriteString(clean(e.Discussion.Title))
	} else {
		b.WriteString(clean(e.Discussion.ID))
	}
	b.WriteString("] ")
	m := e.Message
	if m == nil || !strings.HasPrefix(e.Type, "message.") {
		b.WriteString(clean(e.Type))
		if who := e.Author().Name(); who != "" {
			b.WriteString(" by ")
			b.WriteString(clean(who))
		}
		b.WriteByte('\n')
		return []byte(b.String())
	}
	who := m.Author.Name()
	if who == "" {
		who = m.Kind
	}
	b.WriteString(clean(who))
	switch e.Type {
	case bridge.MessageDeleted:
		b.WriteString(" deleted a message")
	case bridge.MessageUpdated:
		b.WriteString(" (edited): ")
		b.WriteString(clean(m.Text))
	default:
		b.WriteString(": ")
		b.WriteString(clean(m.Text))
	}
	for _, a := range m.Attachments {
		b.WriteString(" [file: ")
		b.WriteString(clean(a.Filename))
		b.WriteByte(']')
	}
	b.WriteByte('\n')
	return []byte(b.String())
}

// clean keeps a value on one line and makes it safe for a terminal: discussion text is
// written by other people, and an escape sequence or a bidi override in it must not reach
// the operator's terminal as such.
func clean(s string) string {
	if !strings.ContainsFunc(s, hazardous) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteByte(' ')
		case hazardous(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func hazardous(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}
