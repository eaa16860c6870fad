package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kdbridge/kdbridge/bridge"
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
}

func newMetrics(sources func() []bridge.Source) *metrics {
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
	}
	m.reg.MustRegister(m.received, m.deliveries, m.latency, m.deadTotal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&sourceCollector{sources: sources})
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
	case isPause(o.Err):
		m.deliveries.WithLabelValues(sink, "paused").Inc()
	default:
		m.deliveries.WithLabelValues(sink, "retry").Inc()
	}
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
	descEvictions  = prometheus.NewDesc("kdbridge_source_evictions_total", "Subscriptions ended by the server (unsubscribed), each retried on a slow schedule.", []string{"source"}, nil)
	descDiscovered = prometheus.NewDesc("kdbridge_source_discovered", "Discussions matched by the last successful discovery poll.", []string{"source"}, nil)
)

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIdentified, descConnects, descEmitted, descBadInput, descDropped, descSubs, descRefusals, descEvictions, descDiscovered} {
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
		if s.Discovering {
			ch <- prometheus.MustNewConstMetric(descDiscovered, prometheus.GaugeValue, float64(s.Discovered), name)
		}
		for kind, n := range s.BadInput {
			ch <- prometheus.MustNewConstMetric(descBadInput, prometheus.CounterValue, float64(n), name, kind)
		}
		states := map[string]int{kinetic.StateIdle: 0, kinetic.StateSubscribing: 0, kinetic.StateSubscribed: 0, kinetic.StateRefused: 0, kinetic.StateUnsubscribed: 0}
		for _, d := range s.Discussions {
			states[d.State]++
		}
		for state, n := range states {
			ch <- prometheus.MustNewConstMetric(descSubs, prometheus.GaugeValue, float64(n), name, state)
		}
	}
}

// isPause reports a failure that asked for a wait (429 Retry-After, a paced Slack channel).
func isPause(err error) bool {
	_, ok := bridge.RetryAfterOf(err)
	return ok
}
