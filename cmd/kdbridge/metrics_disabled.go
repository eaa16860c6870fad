package main

import "github.com/prometheus/client_golang/prometheus"

// disabledTargets reads the dispatcher's disabled targets; none while there is no
// dispatcher (a replica that does not lead).
func (d *daemon) disabledTargets() map[string]int {
	if disp := d.dispatcher(); disp != nil {
		return disp.DisabledTargets()
	}
	return nil
}

// disabledCollector reads, at scrape time, how many targets of each sink are disabled (410
// Gone, or failing for retry.disable_after): the condition behind the KdbridgeTargetDisabled
// alert in deploy/prometheus.
type disabledCollector struct{ disabled func() map[string]int }

var descDisabled = prometheus.NewDesc("kdbridge_targets_disabled",
	"Targets of the sink that are disabled (410 Gone, or failing for retry.disable_after): their deliveries are dead-lettered at once until a replay re-enables them.",
	[]string{"sink"}, nil)

func (c *disabledCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descDisabled }

func (c *disabledCollector) Collect(ch chan<- prometheus.Metric) {
	for sink, n := range c.disabled() {
		ch <- prometheus.MustNewConstMetric(descDisabled, prometheus.GaugeValue, float64(n), sink)
	}
}

// registerDisabled adds kdbridge_targets_disabled, read through disabled.
func (m *metrics) registerDisabled(disabled func() map[string]int) {
	c := &disabledCollector{disabled: disabled}
	m.own = append(m.own, c)
	m.reg.MustRegister(c)
}
