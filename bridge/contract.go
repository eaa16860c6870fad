package bridge

import "context"

// Emitter accepts events from a source. Emit returns nil once the events are accepted for
// delivery (durably: written to the store); a source advances its checkpoints only after
// that. An error means none of them may be assumed accepted: the source retries or stops.
// Passing several events at once lets the store commit them with one fsync.
type Emitter interface {
	Emit(ctx context.Context, events ...Event) error
}

// EmitterFunc adapts a function to Emitter.
type EmitterFunc func(ctx context.Context, events ...Event) error

// Emit calls f.
func (f EmitterFunc) Emit(ctx context.Context, events ...Event) error { return f(ctx, events...) }

// Source produces events until ctx is cancelled. Run returns nil on cancellation, a
// PermanentError when it cannot go on without a change of configuration (bad credentials),
// and any other error when restarting it may help. A source owns its reconnects.
type Source interface {
	Name() string
	Run(ctx context.Context, emit Emitter) error
}

// Target is one destination of a route: a sink, with the per-route options a sink may honour.
type Target struct {
	Route   string `json:"route"`
	Sink    string `json:"sink"`
	Channel string `json:"channel,omitempty"`
}

// Key identifies the target for delivery bookkeeping.
func (t Target) Key() string {
	return t.Route + "\x00" + t.Sink + "\x00" + t.Channel
}

// Delivery is one event on its way to one target.
//
// Event, and everything it points to (Message, Content, Attachments, Raw), may be shared
// with the deliveries of the same event to other targets, which run at the same time: a
// sink reads it and never modifies it.
type Delivery struct {
	Event   Event
	Target  Target
	Attempt int // 1 for the first try
	// Shared holds renderings of Event that other targets' deliveries reuse; it may be nil.
	Shared *Shared
}

// Sink delivers one event to one target. Deliver is called concurrently for different
// discussions and never concurrently for the same discussion and target. It must not modify
// d.Event (see Delivery). It returns nil on success; a PermanentError when retrying cannot
// help; a RetryAfterError when the far side asked for a pause; any other error to be retried
// with backoff.
type Sink interface {
	Name() string
	Deliver(ctx context.Context, d Delivery) error
}
