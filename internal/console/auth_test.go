package console

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/kdbridge/kdbridge/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const adminToken = "0123456789abcdef-admin"

func testAuth(t *testing.T) AuthConfig {
	t.Helper()
	hash := func(p string) config.Secret {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return config.Secret(h)
	}
	a := AuthConfig{
		Tokens: []TokenConfig{{Token: adminToken}, {Token: "0123456789abcdef-viewer", Role: RoleViewer}},
		Users:  []UserConfig{{Name: "ops", PasswordHash: hash("ops-pass"), Role: RoleAdmin}, {Name: "auditor", PasswordHash: hash("aud-pass")}},
	}
	a.Defaults()
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestGuard checks the access rules on every kind of request: without http.auth only
// loopback gets in; with it, credentials decide, roles limit changes to admins, and a
// cross-origin browser POST is refused whoever sends it.
func TestGuard(t *testing.T) {
	reached := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		w.Write([]byte(identityOf(r.Context()).Name + " " + identityOf(r.Context()).Role))
	})
	open := newAuthenticator(AuthConfig{}).guard(h)
	closed := newAuthenticator(testAuth(t)).guard(h)

	type req struct {
		name        string
		guard       http.Handler
		method      string
		remote      string
		bearer      string
		user, pass  string
		fetchSite   string
		origin      string
		wantCode    int
		wantBodyHas string
	}
	const loop, far = "127.0.0.1:5000", "192.0.2.7:5000"
	for _, tt := range []req{
		{name: "no auth, loopback GET", guard: open, method: "GET", remote: loop, wantCode: 200, wantBodyHas: "loopback admin"},
		{name: "no auth, IPv6 loopback POST", guard: open, method: "POST", remote: "[::1]:5000", wantCode: 200},
		{name: "no auth, remote GET", guard: open, method: "GET", remote: far, wantCode: 403, wantBodyHas: "loopback clients only"},
		{name: "auth, loopback without credentials", guard: closed, method: "GET", remote: loop, wantCode: 401},
		{name: "auth, remote without credentials", guard: closed, method: "GET", remote: far, wantCode: 401},
		{name: "admin token", guard: closed, method: "POST", remote: far, bearer: adminToken, wantCode: 200, wantBodyHas: "token admin"},
		{name: "wrong token", guard: closed, method: "GET", remote: far, bearer: adminToken + "x", wantCode: 401},
		{name: "viewer token reads", guard: closed, method: "GET", remote: far, bearer: "0123456789abcdef-viewer", wantCode: 200, wantBodyHas: "token viewer"},
		{name: "viewer token cannot change", guard: closed, method: "POST", remote: far, bearer: "0123456789abcdef-viewer", wantCode: 403, wantBodyHas: "viewer"},
		{name: "admin user", guard: closed, method: "POST", remote: far, user: "ops", pass: "ops-pass", wantCode: 200, wantBodyHas: "ops admin"},
		{name: "wrong password", guard: closed, method: "GET", remote: far, user: "ops", pass: "aud-pass", wantCode: 401},
		{name: "unknown user", guard: closed, method: "GET", remote: far, user: "mallory", pass: "x", wantCode: 401},
		{name: "viewer user reads", guard: closed, method: "GET", remote: far, user: "auditor", pass: "aud-pass", wantCode: 200, wantBodyHas: "auditor viewer"},
		{name: "viewer user cannot change", guard: closed, method: "POST", remote: far, user: "auditor", pass: "aud-pass", wantCode: 403},
		{name: "same-origin browser POST", guard: closed, method: "POST", remote: far, user: "ops", pass: "ops-pass", fetchSite: "same-origin", wantCode: 200},
		{name: "cross-site browser POST", guard: closed, method: "POST", remote: far, user: "ops", pass: "ops-pass", fetchSite: "cross-site", wantCode: 403, wantBodyHas: "cross-origin"},
		{name: "same-site other port POST", guard: closed, method: "POST", remote: far, user: "ops", pass: "ops-pass", fetchSite: "same-site", wantCode: 403, wantBodyHas: "cross-origin"},
		{name: "old browser, foreign Origin", guard: closed, method: "POST", remote: far, user: "ops", pass: "ops-pass", origin: "https://evil.example", wantCode: 403, wantBodyHas: "cross-origin"},
		{name: "cross-site POST on loopback without auth", guard: open, method: "POST", remote: loop, fetchSite: "cross-site", wantCode: 403, wantBodyHas: "cross-origin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := reached
			r := httptest.NewRequest(tt.method, "http://console.example/dead-letters", nil)
			r.RemoteAddr = tt.remote
			if tt.bearer != "" {
				r.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			if tt.user != "" {
				r.SetBasicAuth(tt.user, tt.pass)
			}
			if tt.fetchSite != "" {
				r.Header.Set("Sec-Fetch-Site", tt.fetchSite)
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			w := httptest.NewRecorder()
			tt.guard.ServeHTTP(w, r)
			if w.Code != tt.wantCode || !strings.Contains(w.Body.String(), tt.wantBodyHas) {
				t.Fatalf("%d %q, want %d containing %q", w.Code, w.Body.String(), tt.wantCode, tt.wantBodyHas)
			}
			if got := reached > before; got != (tt.wantCode == 200) {
				t.Errorf("handler reached = %v with status %d", got, w.Code)
			}
			if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge")
			}
		})
	}
}

// TestAuthValidate reports every bad key with its path and never the secret.
func TestAuthValidate(t *testing.T) {
	a := AuthConfig{
		Tokens: []TokenConfig{{Token: "short-secret"}, {}, {Token: "0123456789abcdef0123", Role: "root"}},
		Users: []UserConfig{{Name: "ops", PasswordHash: "plain-password-oops"}, {Name: "ops", PasswordHash: "$2a$04$abcdefghijklmnopqrstuuJ1mE3m3H2sB6mC9u3vQpJxGZk2oYQ1y"},
			{Name: "a:b"}},
	}
	a.Defaults()
	err := a.Validate()
	if err == nil {
		t.Fatal("no problems reported")
	}
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *config.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("not a field error: %v", e)
		}
		fields = append(fields, fe.Field)
	}
	want := []string{"tokens[0].token", "tokens[1].token", "tokens[2].role", "users[0].password_hash", "users[1].name", "users[2].name", "users[2].password_hash"}
	if strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Errorf("fields = %v, want %v\n%v", fields, want, err)
	}
	for _, secret := range []string{"short-secret", "plain-password-oops"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("a problem shows the secret %q: %v", secret, err)
		}
	}
	if (AuthConfig{}).Enabled() || (AuthConfig{}).Validate() != nil {
		t.Error("the zero AuthConfig is not valid and disabled")
	}
}
