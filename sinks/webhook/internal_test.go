package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kdbridge/kdbridge/bridge"
)

// The published example of the Standard Webhooks reference libraries.
func TestSignatureKnownAnswer(t *testing.T) {
	key, err := decodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := signature([][]byte{key}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature = %s, want %s", got, want)
	}
}

// A sink's signer reuses its HMAC states: every signature must still be that of its own
// message, also from concurrent deliveries, and every key must sign.
func TestSignerReuse(t *testing.T) {
	k1, _ := decodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	k2, _ := decodeSecret("whsec_" + strings.Repeat("QUJD", 11))
	g := newSigner([][]byte{k1, k2})
	want := func(key []byte, id string, ts int64, body string) string {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + body))
		return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4*50)
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				id := "evt_" + strings.Repeat("x", w*40) + strconv.Itoa(i) // beyond the 128-byte head buffer too
				body := `{"n":` + strconv.Itoa(w*1000+i) + `}`
				got := g.sign(id, int64(1764176400+i), []byte(body))
				if exp := want(k1, id, int64(1764176400+i), body) + " " + want(k2, id, int64(1764176400+i), body); got != exp {
					errs <- got + " != " + exp
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestTemplateFuncs(t *testing.T) {
	tests := []struct {
		name, src string
		data      any
		want      string
	}{
		{"json string", `{{json .}}`, "a \"b\"\n<c> & ü", `"a \"b\"\n<c> & ü"`},
		{"json object", `{{json .}}`, map[string]int{"n": 1}, `{"n":1}`},
		{"json nil", `{{json .}}`, nil, `null`},
		{"jsonstr", `"x {{jsonstr .}} y"`, "q\"\\\n\t", `"x q\"\\\n\t y"`},
		{"jsonstr time", `{{jsonstr .}}`, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), `2026-01-02 03:04:05 +0000 UTC`},
		{"truncate short", `{{truncate 5 .}}`, "abc", "abc"},
		{"truncate exact", `{{truncate 3 .}}`, "abc", "abc"},
		{"truncate runes", `{{truncate 3 .}}`, "ünïcödé", "ün…"},
		{"truncate one", `{{truncate 1 .}}`, "abc", "…"},
		{"truncate zero", `{{truncate 0 .}}`, "abc", ""},
		{"truncate pipeline", `{{. | truncate 4 | json}}`, "a\"bcdef", `"a\"b…"`},
		{"default empty", `{{default "x" .}}`, "", "x"},
		{"default nil", `{{default "x" .}}`, nil, "x"},
		{"default zero", `{{default 7 .}}`, 0, "7"},
		{"default empty slice", `{{default "none" .}}`, []string{}, "none"},
		{"default set", `{{default "x" .}}`, "y", "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := parseTemplate("t", tt.src)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := tmpl.Execute(&b, tt.data); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got %s, want %s", b.String(), tt.want)
			}
		})
	}
}

func TestSampleTemplateData(t *testing.T) {
	// Validate's sample must keep its traps, or the JSON check in Validate proves nothing.
	s := sampleEnvelope()
	for _, trap := range []string{`"`, `\`, "\n", "\t", "<!here>", "ü"} {
		if !strings.Contains(s.Data.Message.Text, trap) {
			t.Errorf("sample text lacks %q", trap)
		}
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}

func TestExcerpt(t *testing.T) {
	if got := excerpt([]byte("  a\n\n b\t c  ")); got != "a b c" {
		t.Errorf("excerpt = %q", got)
	}
	long := strings.Repeat("é", 150) // 300 bytes: the cut at 200 falls on a character boundary or not
	got := excerpt([]byte("x" + long))
	if !strings.HasSuffix(got, "…") || strings.ContainsRune(got, '\uFFFD') || len(got) > bodyExcerpt+len("…") {
		t.Errorf("excerpt cut badly: %q", got)
	}
	if got := excerpt([]byte{0xff, 'a'}); got != "\uFFFDa" {
		t.Errorf("invalid UTF-8 not replaced: %q", got)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 5 ", 5 * time.Second, true},
		{"0", 0, true},
		{"Thu, 26 Nov 2026 17:01:30 GMT", 90 * time.Second, true},
		{"Thursday, 26-Nov-26 17:00:10 GMT", 10 * time.Second, true}, // RFC 850, still allowed
		{"Thu, 26 Nov 2026 16:00:00 GMT", 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%q) = %s, %v; want %s, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// BenchmarkEncodeAndSign is the per-attempt CPU cost of a webhook delivery before the
// network: the envelope and a signature under each of two secrets (a rotation).
func BenchmarkEncodeAndSign(b *testing.B) {
	k1, _ := decodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	k2, _ := decodeSecret("whsec_" + strings.Repeat("QUJD", 11))
	keys := [][]byte{k1, k2}
	g := newSigner(keys) // as a sink keeps it
	e := bridge.Event{
		ID: bridge.EventID("acme", "d1", "m1", "v1", bridge.MessageCreated), Type: bridge.MessageCreated,
		Source: "acme", Time: time.Now(),
		Discussion: bridge.Discussion{ID: "9fa2b330-fa5e-11e8-88ef-7bbe80231820", Title: "Incident 42", URL: "https://acme.kinops.io/d/1"},
		Message: &bridge.Message{ID: "m1", VersionID: "v1", Kind: bridge.KindUser,
			Text:    "The database is down again; paging the on-call — “quotes” and ünïcödé.",
			Content: []bridge.Token{{Type: "text", Value: json.RawMessage(`"The database is down again"`)}},
			Author:  bridge.User{Username: "alice", DisplayName: "Alice", Email: "alice@example.com"}},
	}
	b.ReportAllocs()
	for b.Loop() {
		body, err := bridge.MarshalEnvelope(e)
		if err != nil {
			b.Fatal(err)
		}
		_ = g.sign(e.ID, 1764176400, body)
	}
}

// FuzzTemplateHelpers: the helpers keep any text JSON-safe, which is their whole purpose.
func FuzzTemplateHelpers(f *testing.F) {
	for _, s := range []string{"", `"`, `\`, "a\nb", "<!channel>", "\x00\x7f\u2028", "\xff", "\xe2\x80", "ünï 🚨"} {
		f.Add(s, 5)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		want := validUTF8(s)
		var got string
		j, err := toJSON(s)
		if err != nil || json.Unmarshal([]byte(j), &got) != nil || got != want {
			t.Fatalf("json %q = %s (%v)", s, j, err)
		}
		js, err := jsonString(s)
		if err != nil || json.Unmarshal([]byte(`"`+js+`"`), &got) != nil || got != want {
			t.Fatalf("jsonstr %q = %s (%v)", s, js, err)
		}
		n = n % 4096
		if tr := truncate(n, s); n >= 0 && utf8.RuneCountInString(tr) > max(n, 0) {
			t.Fatalf("truncate %d %q = %q", n, s, tr)
		}
	})
}

// validUTF8 is s as encoding/json decodes it back: each invalid byte becomes U+FFFD.
func validUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // range yields RuneError for each invalid byte
	}
	return b.String()
}
