package bridge

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// Envelope is the Standard Webhooks payload of an event, the body a webhook receives
// (DESIGN §4): {"type", "timestamp", "data": {"source", "discussion", "message", "raw"}}.
// It is also the data that webhook templates see, which is why it carries the event id even
// though the id travels in the webhook-id header rather than in the body.
type Envelope struct {
	ID        string       `json:"-"`
	Type      string       `json:"type"`
	Timestamp time.Time    `json:"timestamp"`
	Data      EnvelopeData `json:"data"`
}

// EnvelopeData is the "data" member of an Envelope. Message is nil for events that are not
// about a message; Raw is the Kinetic object as received, absent when the source kept none.
type EnvelopeData struct {
	Source     string          `json:"source"`
	Discussion Discussion      `json:"discussion"`
	Message    *Message        `json:"message,omitempty"`
	Raw        json.RawMessage `json:"raw,omitempty"`
}

// NewEnvelope builds the envelope of e. The timestamp is in UTC so that the same event gives
// the same body whatever the zone of the process that built it.
func NewEnvelope(e Event) Envelope {
	env := Envelope{
		ID:        e.ID,
		Type:      e.Type,
		Timestamp: e.Time.UTC(),
		Data: EnvelopeData{
			Source:     e.Source,
			Discussion: e.Discussion,
		},
	}
	if e.Message != nil && strings.HasPrefix(e.Type, "message.") {
		m := *e.Message
		if m.Content == nil {
			// Receivers iterate over content; give them [] rather than null.
			m.Content = []Token{}
		}
		env.Data.Message = &m
	}
	if raw := bytes.TrimSpace(e.Raw); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		env.Data.Raw = e.Raw
	}
	return env
}

// MarshalEnvelope returns the compact JSON encoding of e's envelope: the exact bytes a webhook
// sink signs and sends. Text is not HTML-escaped ("<!channel>" stays readable); the output is
// the same for the same event, so a redelivery carries an identical body. It fails only when
// e.Raw or a content token value is not valid JSON, or a time is outside years 0–9999.
func MarshalEnvelope(e Event) ([]byte, error) {
	env := NewEnvelope(e)
	// Room for the whole body at once, for an event of usual shape: growing the slice
	// halfway would copy it.
	d := &env.Data.Discussion
	hint := 256 + len(env.Data.Raw) + len(d.Title) + len(d.URL) + 64*len(d.Related)
	if m := env.Data.Message; m != nil {
		hint += 192 + 2*len(m.Text) + 96*len(m.Content) + 128*len(m.Attachments)
	}
	return appendEnvelope(make([]byte, 0, hint), &env)
}
