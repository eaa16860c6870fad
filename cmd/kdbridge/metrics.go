package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kdbridge/kdbridge/bridge"
	"github.com/kdbridge/kdbridge/bridge/store"
	"github.com/kdbridge/kdbridge/sinks/slack"
	"github.com/kdbridge/kdbridge/sources/kinetic"
)

// metrics are kdbridge's Prometheus metrics, on a registry of their own (no globals), so
// tests and several daemons in one process never collide.
type metrics struct {
	reg        *prometheus.Registry
	received   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	deadTotal  *prometheus.CounterVec
	leader     *prometheus.GaugeVec
	commits    *prometheus.HistogramVec // the bbolt store's (store.Options.ObserveCommit)
	pages      *prometheus.CounterVec
	own        []prometheus.Collector // the kdbridge_ metrics (the README's table lists them all)
}

// newMetrics reads, at scrape time, the sources' status, the sinks' stats and the
// dispatcher's backlog through the functions given.
func newMetrics(sources func() []bridge.Source, sinks func() []bridge.Sink, backlog func() []bridge.SinkBacklog) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kdbridge_events_received_total", Help: "Events handed over by sources, by source and type (before de-duplication).",
		}, []string{"source", "type"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kdbridge_deliveries_total", Help: "Delivery attempts by sink and outcome (delivered, retry, paused, dead_letter).",
		}, []string{"sink", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kdbridge_delivery_latency_seconds", Help: "Time from the message's Kinetic createdAt (or the event's time) to its delivery, by sink.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
		}, []string{"sink"}),
		deadTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kdbridge_dead_letters_total", Help: "Deliveries dead-lettered, by sink.",
		}, []string{"sink"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kdbridge_leader", Help: "1 while this replica leads (runs the sources and deliveries), 0 while it follows; a single-node (bbolt) daemon always leads.",
		}, []string{"replica"}),
		commits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kdbridge_store_commit_duration_seconds", Help: "Write transactions of the embedded (bbolt) store, from their start until their fsync returned, by file (kdbridge.db: events and deliveries, group-committed; history.db: the attempt history).",
			Buckets: []float64{.0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1.024, 2.048, 4.096},
		}, []string{"file"}),
		pages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kdbridge_store_pages_written_total", Help: "Pages (4 KiB) the embedded (bbolt) store's commits wrote, by file: every page a transaction changed is written whole.",
		}, []string{"file"}),
	}
	m.own = []prometheus.Collector{m.received, m.deliveries, m.latency, m.deadTotal, m.leader, m.commits, m.pages,
		&sourceCollector{sources: sources}, &backlogCollector{backlog: backlog}, &slackCollector{sinks: sinks}}
	m.reg.MustRegister(m.own...)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.registerOwn(&inboundCollector{sources: sources})
	return m
}

// observe records one delivery outcome; the dispatcher calls it.
func (m *metrics) observe(o bridge.Outcome) {
	sink := o.Delivery.Target.Sink
	switch {
	case o.Err == nil:
		m.deliveries.WithLabelValues(sink, "delivered").Inc()
		e := o.Delivery.Event
		at := e.Time
		if e.Message != nil && !e.Message.CreatedAt.IsZero() && e.Type == bridge.MessageCreated {
			at = e.Message.CreatedAt
		}
		if !at.IsZero() {
			m.latency.WithLabelValues(sink).Observe(time.Since(at).Seconds())
		}
	case o.Dead:
		m.deliveries.WithLabelValues(sink, "dead_letter").Inc()
		m.deadTotal.WithLabelValues(sink).Inc()
	case isPause(o.Err) || bridge.IsHalted(o.Err):
		m.deliveries.WithLabelValues(sink, "paused").Inc()
	default:
		m.deliveries.WithLabelValues(sink, "retry").Inc()
	}
}

// observeCommit records one durable write transaction of the embedded store; the store
// calls it (store.Options.ObserveCommit).
func (m *metrics) observeCommit(c store.Commit) {
	m.commits.WithLabelValues(c.File).Observe(c.Took.Seconds())
	m.pages.WithLabelValues(c.File).Add(float64(c.Pages))
}

// countingEmitter counts events on their way from a source into the dispatcher.
type countingEmitter struct {
	next bridge.Emitter
	m    *metrics
}

func (c countingEmitter) Emit(ctx context.Context, events ...bridge.Event) error {
	for _, e := range events {
		c.m.received.WithLabelValues(e.Source, e.Type).Inc()
	}
	return c.next.Emit(ctx, events...)
}

// Behind passes on the dispatcher's advice to hold catch-ups back (bridge.Dispatcher.Behind):
// a source finds it by asking its emitter, which is this.
func (c countingEmitter) Behind(events ...bridge.Event) bool {
	p, ok := c.next.(interface{ Behind(...bridge.Event) bool })
	return ok && p.Behind(events...)
}

// sourceCollector reads each source's status at scrape time.
type sourceCollector struct{ sources func() []bridge.Source }

var (
	descIdentified = prometheus.NewDesc("kdbridge_source_identified", "1 when the source's Topic Hub connection is identified.", []string{"source"}, nil)
	descConnects   = prometheus.NewDesc("kdbridge_source_connects_total", "Topic Hub connections identified (reconnects = this - 1).", []string{"source"}, nil)
	descEmitted    = prometheus.NewDesc("kdbridge_source_events_emitted_total", "Events accepted from the source into the store.", []string{"source"}, nil)
	descBadInput   = prometheus.NewDesc("kdbridge_source_bad_input_total", "Unusable frames and payloads, by kind.", []string{"source", "kind"}, nil)
	descDropped    = prometheus.NewDesc("kdbridge_source_live_events_dropped_total", "Live non-message events dropped because a discussion's queue overflowed.", []string{"source"}, nil)
	descSubs       = prometheus.NewDesc("kdbridge_source_subscriptions", "Wanted discussions (configured or discovered) by subscription state.", []string{"source", "state"}, nil)
	descRefusals   = prometheus.NewDesc("kdbridge_source_subscribe_refusals_total", "Subscribes refused by Kinetic (ack-error), each retried on a slow schedule.", []string{"source"}, nil)
	descEvictions  = prometheus.NewDesc("kdbridge_source_evictions_total", "Subscriptions ended by the server (unsubscribed): the discussion stays removed until a reload.", []string{"source"}, nil)
	descDiscovered = prometheus.NewDesc("kdbridge_source_discovered", "Discussions matched by the last successful discovery poll.", []string{"source"}, nil)
	descTokens     = prometheus.NewDesc("kdbridge_source_token_refreshes_total", "Requests to the OAuth token endpoint (the first token and every renewal), by result (ok, refused, error).", []string{"source", "result"}, nil)
	descCatchUp    = prometheus.NewDesc("kdbridge_source_catchup_messages_total", "Message events emitted by REST catch-ups (after a (re)subscribe or a queue overflow).", []string{"source"}, nil)
	descLiveWaits  = prometheus.NewDesc("kdbridge_source_live_waits_total", "Times reading a source's websocket waited for the store, because the live events it could not yet take held the source's memory budget.", []string{"source"}, nil)
	descHeldBack   = prometheus.NewDesc("kdbridge_source_catchups_held_back_total", "Times a catch-up waited before reading its messages because every target they go to was far behind and taking deliveries.", []string{"source"}, nil)
)

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIdentified, descConnects, descEmitted, descBadInput, descDropped, descSubs, descRefusals, descEvictions, descDiscovered, descTokens, descCatchUp, descHeldBack, descLiveWaits} {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, src := range c.sources() {
		ks, ok := src.(*kinetic.Source)
		if !ok {
			continue
		}
		s := ks.Status()
		name := src.Name()
		identified := 0.0
		if s.Identified {
			identified = 1
		}
		ch <- prometheus.MustNewConstMetric(descIdentified, prometheus.GaugeValue, identified, name)
		ch <- prometheus.MustNewConstMetric(descConnects, prometheus.CounterValue, float64(s.Connects), name)
		ch <- prometheus.MustNewConstMetric(descEmitted, prometheus.CounterValue, float64(s.Emitted), name)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped), name)
		ch <- prometheus.MustNewConstMetric(descRefusals, prometheus.CounterValue, float64(s.Refusals), name)
		ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(s.Evictions), name)
		ch <- prometheus.MustNewConstMetric(descCatchUp, prometheus.CounterValue, float64(s.CatchUpEvents), name)
		ch <- prometheus.MustNewConstMetric(descHeldBack, prometheus.CounterValue, float64(s.CatchUpsHeldBack), name)
		ch <- prometheus.MustNewConstMetric(descLiveWaits, prometheus.CounterValue, float64(s.LiveWaits), name)
		for result, n := range s.TokenRequests {
			ch <- prometheus.MustNewConstMetric(descTokens, prometheus.CounterValue, float64(n), name, result)
		}
		if s.Discovering {
			ch <- prometheus.MustNewConstMetric(descDiscovered, prometheus.GaugeValue, float64(s.Discovered), name)
		}
		for kind, n := range s.BadInput {
			ch <- prometheus.MustNewConstMetric(descBadInput, prometheus.CounterValue, float64(n), name, kind)
		}
		states := map[string]int{kinetic.StateIdle: 0, kinetic.StateSubscribing: 0, kinetic.StateSubscribed: 0, kinetic.StateRefused: 0, kinetic.StateRemoved: 0}
		for _, d := range s.Discussions {
			states[d.State]++
		}
		for state, n := range states {
			ch <- prometheus.MustNewConstMetric(descSubs, prometheus.GaugeValue, float64(n), name, state)
		}
	}
}

// backlogCollector reads the dispatcher's per-sink backlog at scrape time: counters the
// dispatcher keeps as it works, so a scrape costs nothing that grows with the backlog.
type backlogCollector struct{ backlog func() []bridge.SinkBacklog }

var (
	descQueueDepth = prometheus.NewDesc("kdbridge_queue_depth", "Deliveries stored and not yet delivered (nor dead-lettered), by sink.", []string{"sink"}, nil)
	descOldest     = prometheus.NewDesc("kdbridge_oldest_undelivered_seconds", "Age of the oldest undelivered delivery (since its event was stored), by sink; 0 when none waits.", []string{"sink"}, nil)
	descHalted     = prometheus.NewDesc("kdbridge_sink_halted", "1 while the sink is halted because its credentials were refused (a bad Slack token): its queues wait, nothing is dead-lettered.", []string{"sink"}, nil)
)

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descQueueDepth
	ch <- descOldest
	ch <- descHalted
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, b := range c.backlog() {
		age := 0.0
		if b.Pending > 0 && !b.OldestAt.IsZero() {
			age = max(now.Sub(b.OldestAt).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(descQueueDepth, prometheus.GaugeValue, float64(b.Pending), b.Sink)
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age, b.Sink)
		halted := 0.0
		if b.Halted {
			halted = 1
		}
		ch <- prometheus.MustNewConstMetric(descHalted, prometheus.GaugeValue, halted, b.Sink)
	}
}

// pacedSink is a sink that reports its flow control: the Slack sink.
type pacedSink interface {
	Name() string
	Stats() slack.Stats
}

// slackCollector reads the Slack sinks' counters at scrape time.
type slackCollector struct{ sinks func() []bridge.Sink }

var (
	descPacingWait   = prometheus.NewDesc("kdbridge_slack_pacing_wait_seconds_total", "Time deliveries slept for their turn in a channel's rate limit, by sink.", []string{"sink"}, nil)
	descPacingWaits  = prometheus.NewDesc("kdbridge_slack_pacing_waits_total", "Deliveries that slept for their turn in a channel's rate limit, by sink.", []string{"sink"}, nil)
	descPacingHanded = prometheus.NewDesc("kdbridge_slack_pacing_deferred_total", "Deliveries handed back to the dispatcher for later instead of sleeping, by sink and reason (busy: the channel's next turns are taken; paused: the channel is paused after a 429).", []string{"sink", "reason"}, nil)
	descRateLimited  = prometheus.NewDesc("kdbridge_slack_rate_limited_total", "Answers from Slack that asked to slow down (HTTP 429, ratelimited), by sink.", []string{"sink"}, nil)
)

func (c *slackCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPacingWait, descPacingWaits, descPacingHanded, descRateLimited} {
		ch <- d
	}
}

func (c *slackCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.sinks() {
		ps, ok := s.(pacedSink)
		if !ok {
			continue
		}
		st, name := ps.Stats(), ps.Name()
		ch <- prometheus.MustNewConstMetric(descPacingWait, prometheus.CounterValue, st.PacingWait.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(descPacingWaits, prometheus.CounterValue, float64(st.PacingWaits), name)
		ch <- prometheus.MustNewConstMetric(descPacingHanded, prometheus.CounterValue, float64(st.Busy), name, "busy")
		ch <- prometheus.MustNewConstMetric(descPacingHanded, prometheus.CounterValue, float64(st.Paused), name, "paused")
		ch <- prometheus.MustNewConstMetric(descRateLimited, prometheus.CounterValue, float64(st.RateLimited), name)
	}
}

// isPause reports a failure that asked for a wait (429 Retry-After, a paced Slack channel).
func isPause(err error) bool {
	_, ok := bridge.RetryAfterOf(err)
	return ok
}
