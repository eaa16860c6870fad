package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/kdbridge/kdbridge/bridge"
)

// reload reads the configuration again and applies what changed, without touching what did
// not: unchanged sinks keep their queues and connections, a source whose only change is its
// discussion list subscribes and unsubscribes on its live connection, and everything else
// that changed is rebuilt. An invalid configuration is refused as a whole and the running
// one is kept.
func (d *daemon) reload() error {
	if d.deps.reload == nil {
		return errors.New("this daemon was not started from a configuration file")
	}
	cfg, err := d.deps.reload()
	if err != nil {
		return err
	}
	return d.apply(cfg)
}

// discussionSetter is what a source offers to change its discussions in place.
type discussionSetter interface {
	SetDiscussions(ids []string)
}

// removedRetrier is what a source offers to subscribe again, on a reload, to discussions the
// server removed it from (a Kinetic source does not do that on its own: the removal was
// someone's decision).
type removedRetrier interface {
	RetryRemoved()
}

func (d *daemon) apply(cfg *Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.cfg
	if !reflect.DeepEqual(old.Log, cfg.Log) || !reflect.DeepEqual(old.HTTP, cfg.HTTP) || !reflect.DeepEqual(old.State, cfg.State) {
		d.log.Warn("log, http and state settings take effect only after a restart; the rest of the new configuration is applied")
	}

	// 1. Build every new or changed sink first, so a failure changes nothing.
	next := map[string]*liveSink{}
	var fresh []*liveSink
	for _, e := range cfg.Sinks {
		if cur, ok := d.sinks[e.Name]; ok && reflect.DeepEqual(cur.entry, e) {
			next[e.Name] = cur
			continue
		}
		ls, err := d.buildSink(e)
		if err != nil {
			for _, f := range fresh {
				if f.closer != nil {
					_ = f.closer.Close()
				}
			}
			return err
		}
		next[e.Name] = ls
		fresh = append(fresh, ls)
	}

	// 2. Sinks: start the new ones (old ones still run), switch the routes, then stop the
	// removed and replaced ones, so no event is routed to a sink that is not there.
	// Phase one: every current sink as it is, plus the sinks with new names.
	phase1 := specsOf(d.sinks)
	for name, n := range next {
		if _, ok := d.sinks[name]; !ok {
			phase1 = append(phase1, n.spec)
		}
	}
	// A replica that does not lead has no dispatcher nor sources: it keeps the new
	// configuration (and its sinks) for when it leads.
	leading := d.disp != nil
	ctx := context.Background()
	if leading {
		if err := d.disp.SetSinks(ctx, phase1); err != nil {
			return err
		}
		d.disp.SetRouter(bridge.NewRouterSelf(cfg.Routes, d.selfUsers(cfg)))
		if err := d.disp.SetSinks(ctx, specsOf(next)); err != nil {
			return err
		}
	}
	for name, cur := range d.sinks {
		if n, ok := next[name]; (!ok || n != cur) && cur.closer != nil {
			_ = cur.closer.Close()
		}
	}
	d.sinks = next

	// 3. Sources.
	var changed []string
	want := map[string]bool{}
	for _, e := range cfg.Sources {
		if !leading {
			break
		}
		want[e.Name] = true
		cur, ok := d.sources[e.Name]
		switch {
		case ok && reflect.DeepEqual(cur.entry, e):
			if rr, can := cur.src.(removedRetrier); can {
				rr.RetryRemoved()
			}
			continue
		case ok && onlyDiscussionsDiffer(cur.entry, e):
			if ds, can := cur.src.(discussionSetter); can {
				ds.SetDiscussions(e.Kinetic.Discussions)
				cur.entry = e
				changed = append(changed, e.Name+" (discussions)")
				continue
			}
			fallthrough
		case ok:
			cur.stop()
			delete(d.sources, e.Name)
		}
		if err := d.startSource(e); err != nil {
			d.log.Error("reload: source not started", "source", e.Name, "error", err)
			continue
		}
		changed = append(changed, e.Name)
	}
	for name, cur := range d.sources {
		if !want[name] {
			cur.stop()
			delete(d.sources, name)
			d.selves.Delete(name)
			changed = append(changed, name+" (removed)")
		}
	}
	d.cfg = cfg
	d.log.Info("configuration reloaded", "sources_changed", fmt.Sprint(changed), "sinks_rebuilt", len(fresh), "routes", len(cfg.Routes))
	return nil
}

func onlyDiscussionsDiffer(a, b sourceEntry) bool {
	if a.Kinetic == nil || b.Kinetic == nil || a.Type != b.Type {
		return false
	}
	ak, bk := *a.Kinetic, *b.Kinetic
	ak.Discussions, bk.Discussions = nil, nil
	return reflect.DeepEqual(ak, bk)
}
