// Package kinetic is the Kinetic Platform Discussions source: it authenticates with the
// space's OAuth token endpoint, subscribes to discussions on the Topic Hub websocket, decodes
// the live events into bridge events and catches up from the Discussions REST API whatever
// it missed while it was not connected.
package kinetic

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/kdbridge/kdbridge/internal/config"
)

// Defaults of the optional settings.
const (
	DefaultHeartbeat  = 30 * time.Second // the official client's TOPIC_HUB_HEARTBEAT_INTERVAL
	DefaultReadLimit  = 1 << 20
	DefaultAckTimeout = 10 * time.Second
	DefaultPageSize   = 100
	// DefaultSubscribesInFlight caps the subscribes awaiting their ack on one connection. A
	// subscribe does database work on the server (the first one per discussion also adds
	// kdbridge's user as a participant and posts a "joined" message), so thousands sent at
	// once would be acknowledged late: the window of subscribes in flight starts at 16 and
	// opens only while acks come back well within ack_timeout (see subscribeWindow); this is
	// its ceiling.
	DefaultSubscribesInFlight = 512
	// DefaultReadAhead bounds the live events a source reads ahead of the store (see
	// Config.ReadAhead). A burst of 20,000 messages over 200 discussions reads ~19 MiB ahead
	// when nothing bounds it; with 4 MiB it peaks at ~71 MB RSS instead of ~91, for a
	// throughput within the bench's noise (docs/performance.md, "Twelfth round").
	DefaultReadAhead = 4 << 20
	// MinReadAhead and MaxReadAhead are the range read_ahead accepts.
	MinReadAhead = 1024
	MaxReadAhead = 1 << 40
)

// Config is the YAML configuration of one Kinetic source (the keys of a `sources:` entry
// besides name and type).
type Config struct {
	URL              string          `yaml:"url"`                // space URL: https://acme.kinops.io or https://host/kinetic/acme
	ClientID         string          `yaml:"client_id"`          // OAuth client id (usually a service user's username)
	ClientSecret     config.Secret   `yaml:"client_secret"`      // OAuth client secret
	ClientSecretFile string          `yaml:"client_secret_file"` // file holding client_secret
	Discussions      []string        `yaml:"discussions"`        // discussion ids to subscribe to
	Discover         *DiscoverConfig `yaml:"discover"`           // optional: also subscribe to the discussions that match
	Heartbeat        config.Duration `yaml:"heartbeat"`          // Topic Hub heartbeat period; default 30s
	ReadLimit        int64           `yaml:"read_limit"`         // largest accepted websocket frame in bytes; default 1 MiB
	AckTimeout       config.Duration `yaml:"ack_timeout"`        // wait for ack-ok/ack-error; default 10s
	Backfill         config.Duration `yaml:"backfill"`           // first run without checkpoint: replay this much history; default none
	PageSize         int             `yaml:"page_size"`          // REST catch-up page size; default 100
	// SubscribesInFlight caps the subscribes sent and not yet acknowledged (the ceiling of
	// the adaptive window, which starts at 16); default 512.
	SubscribesInFlight int `yaml:"subscribes_in_flight"`
	// ReadAhead bounds, in bytes, the live events held beyond the batches being handed to
	// the store: while the source holds more and the store is busy with a batch in every
	// emit slot, reading the websocket waits for the store; default 4 MiB (the daemon gives a
	// source whose state is on PostgreSQL 64 MiB when its configuration sets none).
	ReadAhead int64 `yaml:"read_ahead"`
}

// Defaults fills the settings left empty. Call it before Validate.
func (c *Config) Defaults() {
	c.URL = strings.TrimRight(strings.TrimSpace(c.URL), "/")
	if c.Heartbeat == 0 {
		c.Heartbeat = config.Duration(DefaultHeartbeat)
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = DefaultReadLimit
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = config.Duration(DefaultAckTimeout)
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.SubscribesInFlight == 0 {
		c.SubscribesInFlight = DefaultSubscribesInFlight
	}
	if c.ReadAhead == 0 {
		c.ReadAhead = DefaultReadAhead
	}
	if c.Discover != nil {
		c.Discover.defaults()
	}
}

// idPattern is deliberately wider than a UUID: ids go into URL paths and topic names, so they
// must be path-safe, but nothing in the protocol promises the UUID form.
// idPattern is a discussion id: Kinetic's are UUIDs (reference §4), and anything else in a
// configuration is a mistake that would only show up as a refused subscription.
var idPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Validate reports every problem of the configuration, joined, as config.FieldError values.
// It does no network I/O.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, config.Fieldf(field, format, args...)) }

	if c.URL == "" {
		add("url", "is required (the space URL, such as https://acme.kinops.io)")
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("url", "%q is not an absolute http(s) URL", c.URL)
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		add("url", "must be the plain space URL, without user info, query or fragment")
	}
	if strings.TrimSpace(c.ClientID) == "" {
		add("client_id", "is required")
	}
	if !c.ClientSecret.IsSet() && c.ClientSecretFile == "" {
		add("client_secret", "is required (or client_secret_file)")
	}
	if len(c.Discussions) == 0 && c.Discover == nil {
		add("discussions", "at least one discussion id is required (or a discover: block)")
	}
	seen := map[string]bool{}
	for i, id := range c.Discussions {
		field := config.Path("discussions", i)
		switch {
		case !idPattern.MatchString(id):
			add(field, "%q is not a discussion id: Kinetic discussion ids are UUIDs such as 9fa2b330-fa5e-11e8-88ef-7bbe80231820", id)
		case seen[id]:
			add(field, "discussion %s is listed twice", id)
		}
		seen[id] = true
	}
	if hb := c.Heartbeat.D(); hb < 100*time.Millisecond || hb > 10*time.Minute {
		add("heartbeat", "%s is out of range (100ms to 10m)", hb)
	}
	if at := c.AckTimeout.D(); at < 100*time.Millisecond || at > 5*time.Minute {
		add("ack_timeout", "%s is out of range (100ms to 5m)", at)
	}
	if c.ReadLimit < 1024 || c.ReadLimit > 1<<30 {
		add("read_limit", "%d bytes is out of range (1024 to 1 GiB)", c.ReadLimit)
	}
	if c.ReadAhead < MinReadAhead || c.ReadAhead > MaxReadAhead {
		add("read_ahead", "%d bytes is out of range (1024 to 1 TiB)", c.ReadAhead)
	}
	if c.Backfill.D() < 0 {
		add("backfill", "must not be negative")
	}
	if c.PageSize < 1 || c.PageSize > 1000 {
		add("page_size", "%d is out of range (1 to 1000)", c.PageSize)
	}
	if c.SubscribesInFlight < 1 || c.SubscribesInFlight > 1000 {
		add("subscribes_in_flight", "%d is out of range (1 to 1000)", c.SubscribesInFlight)
	}
	if c.Discover != nil {
		c.Discover.validate(add)
	}
	return errors.Join(errs...)
}
