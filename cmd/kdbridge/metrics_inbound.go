package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kdbridge/kdbridge/bridge"
	slackin "github.com/kdbridge/kdbridge/sources/slack"
)

// registerOwn registers more kdbridge_ metrics (listed in the README's table like the rest).
func (m *metrics) registerOwn(cs ...prometheus.Collector) {
	m.own = append(m.own, cs...)
	m.reg.MustRegister(cs...)
}

// inboundCollector reads the two-way (Slack → Kinetic) sources' status at scrape time.
// Deliveries into Kinetic are kdbridge_deliveries_total{sink="kinetic"}.
type inboundCollector struct{ sources func() []bridge.Source }

var (
	descInbound       = prometheus.NewDesc("kdbridge_inbound_events_total", "Events received from Slack over Socket Mode, by source and outcome (bridged, own, unmirrored, one_way, unsupported, unchanged, malformed, too_large).", []string{"source", "outcome"}, nil)
	descSocketUp      = prometheus.NewDesc("kdbridge_inbound_connected", "1 while the source's Socket Mode connection is up.", []string{"source"}, nil)
	descSocketConnect = prometheus.NewDesc("kdbridge_inbound_connects_total", "Socket Mode connections made (reconnects = this - 1).", []string{"source"}, nil)
)

func (c *inboundCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descInbound
	ch <- descSocketUp
	ch <- descSocketConnect
}

func (c *inboundCollector) Collect(ch chan<- prometheus.Metric) {
	for _, src := range c.sources() {
		is, ok := src.(*slackin.Source)
		if !ok {
			continue
		}
		s, name := is.Status(), src.Name()
		for _, o := range slackin.Outcomes {
			ch <- prometheus.MustNewConstMetric(descInbound, prometheus.CounterValue, float64(s.Events[o]), name, o)
		}
		up := 0.0
		if s.State == slackin.StateConnected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descSocketUp, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(descSocketConnect, prometheus.CounterValue, float64(s.Connects), name)
	}
}
