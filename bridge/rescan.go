package bridge

import "context"

// Rescan is for a store that other processes change too (a replica of kdbridge replayed dead
// letters in a shared database): it forgets what the sink runners remember about disabled
// targets, counts the backlog again and schedules every queue that has pending work. A
// running Dispatcher only.
func (d *Dispatcher) Rescan(ctx context.Context) error {
	d.mu.RLock()
	for _, r := range d.sinks {
		r.mu.Lock()
		for _, ts := range r.targets {
			ts.loaded = false
		}
		r.mu.Unlock()
	}
	d.mu.RUnlock()
	if err := d.countBacklog(ctx); err != nil {
		d.log.Error("count pending deliveries", "err", err)
	}
	return d.resume(ctx)
}
