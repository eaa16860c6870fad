package kinetic

import (
	"encoding/base64"
	"testing"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// The user kdbridge acts as is the token's username claim, which may differ from client_id;
// before the first token it is client_id.
func TestSelfUserFromToken(t *testing.T) {
	srv := newSim(t, kinetictest.Options{})
	srv.AddClient("kdbridge-client", "client-s3cret-77", kinetictest.User{Username: "svc-kdbridge", DisplayName: "kdbridge"})
	d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
	h := build(t, srv, []string{d.ID}, func(c *Config, o *Options, tm *timing) {
		c.ClientID, c.ClientSecret = "kdbridge-client", "client-s3cret-77"
	})
	if got := h.src.SelfUser(); got != "kdbridge-client" {
		t.Errorf("SelfUser before the first token = %q, want client_id", got)
	}
	h.run()
	h.waitReady()
	if got := h.src.SelfUser(); got != "svc-kdbridge" {
		t.Errorf("SelfUser = %q, want the token's username claim svc-kdbridge", got)
	}
	if got := h.src.Status().Username; got != "svc-kdbridge" {
		t.Errorf("Status().Username = %q", got)
	}
}

func TestJWTUsername(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	head := enc(`{"alg":"HS256","typ":"JWT"}`)
	for _, tc := range []struct{ token, want string }{
		{head + "." + enc(`{"clientId":"c","username":"svc","exp":1}`) + ".sig", "svc"},
		{head + "." + enc(`{"clientId":"c"}`) + ".sig", ""},
		{head + "." + enc(`not json`) + ".sig", ""},
		{"opaque-token", ""},
		{"a.!!!.c", ""},
	} {
		if got := jwtUsername(tc.token); got != tc.want {
			t.Errorf("jwtUsername(%q) = %q, want %q", tc.token, got, tc.want)
		}
	}
}
