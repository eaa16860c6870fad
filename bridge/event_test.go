package bridge

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"testing"
)

// eventIDAsFirstMade is EventID as kdbridge first made ids. Stored ids (de-duplication,
// idempotency keys already sent) depend on every later version making the same ones.
func eventIDAsFirstMade(parts ...string) string {
	h := sha256.New()
	for _, part := range parts {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "evt_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h.Sum(nil)[:20]))
}

func TestEventIDStaysTheSame(t *testing.T) {
	for _, tt := range []struct {
		parts [5]string
		want  string
	}{
		{[5]string{"acme", "9fa2b330-fa5e-11e8-88ef-7bbe80231820", "5b1e0c1a-3f7d-4c5e-9a55-2d8f6a3b9e01", "", MessageCreated}, "evt_syocoyh7shlgogtgzf3234bze2xsidal"},
		{[5]string{}, "evt_rbkvbcvn4fxmk46sdzveqxp5bj3cicc4"},
		{[5]string{"slack", "d\x00é", "1733318400.000100", "v2", MessageDeleted}, "evt_nftwlkkijybayx7ujcw3ha3ns3sdl4vr"},
		{[5]string{strings.Repeat("s", 300), "d", "o", "v", "t"}, eventIDAsFirstMade(strings.Repeat("s", 300), "d", "o", "v", "t")},
	} {
		p := tt.parts
		if got := EventID(p[0], p[1], p[2], p[3], p[4]); got != tt.want {
			t.Errorf("EventID(%q) = %s, want %s", p, got, tt.want)
		}
	}
}

func FuzzEventID(f *testing.F) {
	f.Add("acme", "9fa2b330-fa5e-11e8-88ef-7bbe80231820", "5b1e0c1a-3f7d-4c5e-9a55-2d8f6a3b9e01", "", MessageCreated)
	f.Add(strings.Repeat("x", 250), "d", "o", "v", "t")
	f.Fuzz(func(t *testing.T, source, discussion, object, version, typ string) {
		if got, want := EventID(source, discussion, object, version, typ), eventIDAsFirstMade(source, discussion, object, version, typ); got != want {
			t.Fatalf("EventID = %s, first made as %s", got, want)
		}
	})
}
