package slack

import (
	"context"
	"encoding/json"
	"fmt"
)

// Origin is what a Slack message posted by the sink mirrors: a Kinetic message, or a
// discussion (its thread parent). It is the reverse of the message map, kept in the same KV
// namespace, so that a reply typed in Slack (two-way, sources/slack) finds its discussion
// after a restart and on any replica that shares the store.
type Origin struct {
	Route      string `json:"route"`             // the route whose delivery posted it
	Source     string `json:"source"`            // the Kinetic source
	Discussion string `json:"discussion"`        // the Kinetic discussion id
	Message    string `json:"message,omitempty"` // the Kinetic message id; "" for a thread parent
}

// Namespace is the KV namespace of the sink named sink.
func Namespace(sink string) string { return "slack/" + sink }

func originKey(channel, ts string) string { return "origin/" + channel + "/" + ts }

func (s *Sink) saveOrigin(ctx context.Context, ch, ts string, o Origin) error {
	return s.save(ctx, originKey(ch, ts), o)
}

// LookupOrigin returns what the Slack message ts in channel mirrors, as recorded by the sink
// named sink in kv; ok is false for a message the sink did not post.
func LookupOrigin(ctx context.Context, kv KV, sink, channel, ts string) (o Origin, ok bool, err error) {
	b, ok, err := kv.Get(ctx, Namespace(sink), originKey(channel, ts))
	if err != nil || !ok {
		return o, false, err
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return o, false, fmt.Errorf("slack: unreadable origin of %s/%s in the store: %w", channel, ts, err)
	}
	return o, true, nil
}
