package bridge

import "sync"

// Shared is what the deliveries of one event to several targets can share: renderings that
// do not depend on the target, made by the first delivery that needs them. A Store may hand
// out one Shared per event with Pending (bridge/store does, while the event is in its cache);
// the dispatcher passes it on in Delivery. nil is valid and shares nothing.
//
// What it returns is shared with other deliveries, concurrently: read it, never modify it.
type Shared struct {
	envOnce  sync.Once
	envelope []byte
	envErr   error
}

// Envelope returns MarshalEnvelope(e), encoded once per Shared. e must be the event the
// Shared belongs to. The returned bytes must not be modified.
func (s *Shared) Envelope(e Event) ([]byte, error) {
	if s == nil {
		return MarshalEnvelope(e)
	}
	s.envOnce.Do(func() { s.envelope, s.envErr = MarshalEnvelope(e) })
	return s.envelope, s.envErr
}
