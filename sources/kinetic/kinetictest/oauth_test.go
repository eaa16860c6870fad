package kinetictest

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func jwtParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	dec := func(s string) map[string]any {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWT part %q: %v", s, err)
		}
		return decode[map[string]any](t, raw)
	}
	return dec(parts[0]), dec(parts[1])
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func TestTokenEndpoint(t *testing.T) {
	clock := newTestClock()
	s := newTestServer(t, Options{Now: clock.Now})

	status, body := fetchToken(t, s, "integration-user", "integration-secret")
	if status != http.StatusOK {
		t.Fatalf("status %d %v", status, body)
	}
	wantKeys := []string{"access_token", "displayName", "email", "expires_in", "iss", "scope", "spaceAdmin", "spaceSlug", "token_type", "username"}
	if got := sortedKeys(body); !slices.Equal(got, wantKeys) {
		t.Fatalf("keys %v, want %v", got, wantKeys)
	}
	want := map[string]any{
		"token_type": "bearer", "expires_in": float64(43199), "scope": "full_access", "spaceSlug": "acme",
		"displayName": "Integration User", "iss": "kinetic-data", "spaceAdmin": true,
		"email": "integration-user@example.com", "username": "integration-user",
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}

	header, claims := jwtParts(t, body["access_token"].(string))
	if header["alg"] != "HS256" || header["typ"] != "JWT" {
		t.Errorf("header %v", header)
	}
	wantClaims := []string{"clientId", "displayName", "email", "exp", "iss", "spaceAdmin", "spaceSlug", "username"}
	if got := sortedKeys(claims); !slices.Equal(got, wantClaims) {
		t.Fatalf("claims %v, want %v", got, wantClaims)
	}
	if exp := int64(claims["exp"].(float64)); exp != clock.Now().Add(43199*time.Second).Unix() {
		t.Errorf("exp %d", exp)
	}
	if claims["iss"] != "kinetic-data" || claims["clientId"] != "integration-user" || claims["spaceSlug"] != "acme" {
		t.Errorf("claims %v", claims)
	}
}

func TestTokenEndpointRejects(t *testing.T) {
	s := newTestServer(t, Options{})
	u := s.URL() + "/app/oauth/token?grant_type=client_credentials&response_type=token"

	post := func(url, user, pass string, basic bool) (int, []byte) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("accept=json&content_type=json"))
		if basic {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&raw)
		return resp.StatusCode, raw
	}
	status, raw := post(u, "integration-user", "wrong", true)
	wantError(t, status, raw, http.StatusUnauthorized)
	status, raw = post(u, "nobody", "integration-secret", true)
	wantError(t, status, raw, http.StatusUnauthorized)
	status, raw = post(u, "", "", false)
	wantError(t, status, raw, http.StatusUnauthorized)
	status, raw = post(strings.Replace(u, "client_credentials", "password", 1), "integration-user", "integration-secret", true)
	wantError(t, status, raw, http.StatusBadRequest)
	// The body is ignored: the PER handlers send a form body by accident (§2.2).
	if status, raw := post(u, "integration-user", "integration-secret", true); status != http.StatusOK {
		t.Fatalf("status %d %s", status, raw)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET token: %d", resp.StatusCode)
	}
	if got := s.Stats().TokenRequests; got != 6 {
		t.Errorf("TokenRequests = %d, want 6", got)
	}
}

func TestAddUserAndTokenLifetime(t *testing.T) {
	clock := newTestClock()
	s := newTestServer(t, Options{Now: clock.Now, ClientID: "svc", ClientSecret: "pw", SpaceSlug: "globex"})
	s.AddUser(User{Username: "dana", DisplayName: "Dana", Email: "dana@example.com"}, "dana-pw")
	s.SetTokenLifetime(90 * time.Second)

	status, body := fetchToken(t, s, "dana", "dana-pw")
	if status != http.StatusOK {
		t.Fatalf("status %d %v", status, body)
	}
	if body["spaceAdmin"] != false || body["username"] != "dana" || body["spaceSlug"] != "globex" || body["expires_in"] != float64(90) {
		t.Fatalf("body %v", body)
	}
	if status, _ := fetchToken(t, s, "svc", "pw"); status != http.StatusOK {
		t.Fatalf("custom client credentials refused: %d", status)
	}
	if status, _ := fetchToken(t, s, "integration-user", "integration-secret"); status != http.StatusUnauthorized {
		t.Fatalf("default credentials accepted with custom ones configured: %d", status)
	}

	tok := body["access_token"].(string)
	if status, raw := call(t, s, tok, http.MethodGet, "/version", nil); status != http.StatusOK {
		t.Fatalf("fresh token refused: %d %s", status, raw)
	}
	clock.Advance(90 * time.Second)
	status, raw := call(t, s, tok, http.MethodGet, "/version", nil)
	wantError(t, status, raw, http.StatusUnauthorized)
}

func TestRESTRequiresValidBearer(t *testing.T) {
	clock := newTestClock()
	s := newTestServer(t, Options{Now: clock.Now})
	d := s.CreateDiscussion(DiscussionSpec{Title: "t"})
	tok := token(t, s)
	path := "/discussions/" + d.ID

	if status, raw := call(t, s, tok, http.MethodGet, path, nil); status != http.StatusOK {
		t.Fatalf("valid token: %d %s", status, raw)
	}
	status, raw := call(t, s, "", http.MethodGet, path, nil)
	wantError(t, status, raw, http.StatusUnauthorized)
	status, raw = call(t, s, "not-a-jwt", http.MethodGet, path, nil)
	wantError(t, status, raw, http.StatusUnauthorized)

	// Same claims signed with another server's key.
	other := NewHandler(Options{Now: clock.Now})
	defer other.Close()
	forged, err := other.Token("integration-user")
	if err != nil {
		t.Fatal(err)
	}
	status, raw = call(t, s, forged, http.MethodGet, path, nil)
	wantError(t, status, raw, http.StatusUnauthorized)

	// Tampered claims.
	parts := strings.Split(tok, ".")
	_, claims := jwtParts(t, tok)
	claims["username"] = "root"
	parts[1] = base64.RawURLEncoding.EncodeToString(mustJSON(claims))
	status, raw = call(t, s, strings.Join(parts, "."), http.MethodGet, path, nil)
	wantError(t, status, raw, http.StatusUnauthorized)

	clock.Advance(43199 * time.Second)
	status, raw = call(t, s, tok, http.MethodGet, path, nil)
	wantError(t, status, raw, http.StatusUnauthorized)
}
