package bench

import (
	"os"
	"testing"
)

var deliveryBodies = []string{
	`{"data":{"discussion":{"id":"d1"},"message":{"id":"m1"}}}`,
	` { "data" : { "message" : { "id" : "m1" } , "discussion" : { "x" : [1, 2.5e3, true, null], "id" : "d1" } } } `,
	`{"data":{"discussion":{"id":"d\u00e91"},"message":{"id":"m\"1"}}}`, // escapes: encoding/json
	`{"data":{"discussion":{"ID":"d1"},"message":{"Id":"m1"}}}`,         // other spellings: encoding/json
	`{"data":{"discussion":{"id":"d1"},"message":{"id":"m1"},"data":{}}}`,
	`{"data":{"discussion":{"id":"d1"}},"data":{"message":{"id":"m2"}}}`,
	`{"data":{"discussion":{"id":"d1"},"message":{"id":"m1","id":"m2"}}}`,
	`{"data":{"discussion":{"id":"d1"},"message":{"id":7}}}`,
	`{"data":{"discussion":null,"message":{"id":"m1"}}}`,
	`{"data":{"discussion":{"id":"d1"},"message":{"id":"m1"}}} x`,
	`{"data":{"discussion":{"id":"d1"},"message":{"id":"m1"}}`,
	`{"data":{"message":{"id":"m1"}},"tail":[1,2,}`,
	`{"data":{"discussion":{"id":"d1"}}}`,
	`[]`,
	``,
	`{"data":{"discussion":{"id":"d1"},"message":{"id":"\xff"}}}`,
}

// deliveryIDs reads what encoding/json reads, for every body.
func TestDeliveryIDs(t *testing.T) {
	bodies := deliveryBodies
	for _, f := range []string{"testdata/envelope.json", "testdata/raw-body.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	for _, b := range bodies {
		d, m, ok := deliveryIDs([]byte(b))
		wd, wm, wok := jsonDeliveryIDs([]byte(b))
		if d != wd || m != wm || ok != wok {
			t.Errorf("%s: %q %q %v; encoding/json: %q %q %v", b, d, m, ok, wd, wm, wok)
		}
	}
	// The envelopes the bench receives take the fast path.
	b, _ := os.ReadFile("testdata/envelope.json")
	if d, m, ok := scanDeliveryIDs(b); !ok || d != "81efebb8-3016-4903-9318-62f43e07e193" || m != "cf676909-98e9-43c7-bc18-6068a4a4e106" {
		t.Errorf("kdbridge's envelope: %q %q %v", d, m, ok)
	}
}

func FuzzDeliveryIDs(f *testing.F) {
	for _, b := range deliveryBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, m, ok := deliveryIDs(b)
		wd, wm, wok := jsonDeliveryIDs(b)
		if d != wd || m != wm || ok != wok {
			t.Errorf("%q: %q %q %v; encoding/json: %q %q %v", b, d, m, ok, wd, wm, wok)
		}
	})
}

// The receiver's work per delivery, against what it was (encoding/json).
func BenchmarkDeliveryIDs(b *testing.B) {
	for _, f := range []string{"envelope", "raw-body"} {
		body, err := os.ReadFile("testdata/" + f + ".json")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(f+"/scan", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				deliveryIDs(body)
			}
		})
		b.Run(f+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				jsonDeliveryIDs(body)
			}
		})
	}
}
