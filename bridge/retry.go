package bridge

import (
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/kdbridge/kdbridge/internal/config"
)

// RetryConfig is a sink's `retry:` block: exponential backoff with jitter between attempts,
// giving up (dead letter) once the first attempt is older than MaxAge.
type RetryConfig struct {
	Initial     config.Duration `yaml:"initial"`      // default 1s
	MaxInterval config.Duration `yaml:"max_interval"` // default 1h
	MaxAge      config.Duration `yaml:"max_age"`      // default 48h
	// DisableAfter disables a target that has failed continuously this long: its deliveries
	// are dead-lettered with the reason until `dlq replay` re-enables it. Default 24h.
	DisableAfter config.Duration `yaml:"disable_after"`
}

// Defaults fills unset fields. The defaults follow the spirit of the Standard Webhooks
// schedule: quick retries first, then about hourly, for two days.
func (r *RetryConfig) Defaults() {
	if r.Initial == 0 {
		r.Initial = config.Duration(time.Second)
	}
	if r.MaxInterval == 0 {
		r.MaxInterval = config.Duration(time.Hour)
	}
	if r.MaxAge == 0 {
		r.MaxAge = config.Duration(48 * time.Hour)
	}
	if r.DisableAfter == 0 {
		r.DisableAfter = config.Duration(24 * time.Hour)
	}
}

// Validate checks the policy.
func (r *RetryConfig) Validate() error {
	if r.MaxInterval < r.Initial {
		return config.Fieldf("retry.max_interval", "must not be shorter than retry.initial (%s)", r.Initial)
	}
	return nil
}

// wait returns the pause before the next attempt after `failures` failed attempts. The
// backoff state is rebuilt from the persisted count, so a restart keeps the schedule.
func (r RetryConfig) wait(failures int) time.Duration {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = r.Initial.D()
	b.MaxInterval = r.MaxInterval.D()
	b.Multiplier = 2
	b.RandomizationFactor = 0.3
	b.Reset()
	d := b.InitialInterval
	for i := 0; i < failures && i < 64; i++ {
		d = b.NextBackOff()
	}
	return d
}
