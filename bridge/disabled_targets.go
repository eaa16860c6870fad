package bridge

import (
	"maps"
	"slices"
)

// DisabledTargets reports, per configured sink (every one listed, 0 included), how many of
// its targets are disabled as far as this process knows: those it disabled, and those
// whose stored flag it has read because a delivery for them came up. (A target disabled
// before a restart is counted again as soon as an event is routed to it.) It reads the
// sink runners' memory, never the store, so it is cheap enough for every metrics scrape.
func (d *Dispatcher) DisabledTargets() map[string]int {
	d.mu.RLock()
	runners := slices.Collect(maps.Values(d.sinks))
	d.mu.RUnlock()
	out := make(map[string]int, len(runners))
	for _, r := range runners {
		n := 0
		r.mu.Lock()
		for _, ts := range r.targets {
			if ts.disabled != "" {
				n++
			}
		}
		r.mu.Unlock()
		out[r.spec.Sink.Name()] = n
	}
	return out
}
