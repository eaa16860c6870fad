package kinetictest

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// account is a user who can obtain tokens: with client_credentials the Basic client id is
// the username and the secret is the password (reference §2.2, DOC).
type account struct {
	user     User
	password string
	admin    bool
}

// claims are exactly the JWT claims of a Kinetic access token (§2.2): no iat.
type claims struct {
	ClientID    string `json:"clientId"`
	DisplayName string `json:"displayName"`
	Email       string `json:"email"`
	Exp         int64  `json:"exp"`
	Iss         string `json:"iss"`
	SpaceAdmin  bool   `json:"spaceAdmin"`
	SpaceSlug   string `json:"spaceSlug"`
	Username    string `json:"username"`
}

func (c claims) user() User {
	return User{Username: c.Username, DisplayName: c.DisplayName, Email: c.Email}
}

// tokenResponse is the token endpoint's JSON, field for field as in §2.2.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	SpaceSlug   string `json:"spaceSlug"`
	DisplayName string `json:"displayName"`
	Iss         string `json:"iss"`
	SpaceAdmin  bool   `json:"spaceAdmin"`
	Email       string `json:"email"`
	Username    string `json:"username"`
}

const issuer = "kinetic-data"

// jwtHeader is the fixed, pre-encoded header {"alg":"HS256","typ":"JWT"}.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// AddUser registers a user who can obtain tokens with Basic username:password and then
// identify, subscribe and post. Users added this way are not space admins.
func (s *Server) AddUser(u User, password string) {
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	s.users[u.Username] = account{user: u, password: password}
}

// AddClient registers an OAuth client whose id is not the username of the user it acts as:
// its tokens carry clientId = clientID and username = the user's (reference §2.2: both are
// claims of a real token). The user gets the Options.ClientID user's rights (space admin).
func (s *Server) AddClient(clientID, secret string, u User) {
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	if s.clients == nil {
		s.clients = make(map[string]oauthClient)
	}
	s.clients[clientID] = oauthClient{username: u.Username, secret: secret}
	s.users[u.Username] = account{user: u, admin: true}
}

// oauthClient is a client registered with AddClient.
type oauthClient struct{ username, secret string }

func (s *Server) lookupAccount(username, password string) (account, bool) {
	s.usersMu.RLock()
	if c, ok := s.clients[username]; ok {
		a := s.users[c.username]
		s.usersMu.RUnlock()
		if subtle.ConstantTimeCompare([]byte(c.secret), []byte(password)) != 1 {
			return account{}, false
		}
		return a, true
	}
	a, ok := s.users[username]
	s.usersMu.RUnlock()
	if !ok || subtle.ConstantTimeCompare([]byte(a.password), []byte(password)) != 1 {
		return account{}, false
	}
	return a, true
}

// handleToken serves POST /app/oauth/token?grant_type=client_credentials&response_type=token.
// The body is ignored: real clients send none or a meaningless form body (§2.2).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.stats.tokenRequests.Add(1)
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "The token endpoint only accepts POST")
		return
	}
	if status, ok := s.faults.takeTokenFailure(); ok {
		writeError(w, status, "simulated_failure", "simulated failure")
		return
	}
	if gt := r.URL.Query().Get("grant_type"); gt != "client_credentials" {
		writeError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant type: "+gt)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		writeError(w, http.StatusUnauthorized, "unauthorized", "Full authentication is required")
		return
	}
	a, ok := s.lookupAccount(id, secret)
	if !ok {
		writeError(w, http.StatusUnauthorized, "bad_credentials", "Bad credentials")
		return
	}
	lifetime := s.tokenLifetime()
	c := claims{
		ClientID:    id,
		DisplayName: a.user.DisplayName,
		Email:       a.user.Email,
		Exp:         s.now().Add(lifetime).Unix(),
		Iss:         issuer,
		SpaceAdmin:  a.admin,
		SpaceSlug:   s.opts.SpaceSlug,
		Username:    a.user.Username,
	}
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: s.signJWT(c),
		TokenType:   "bearer",
		ExpiresIn:   int64(lifetime / time.Second),
		Scope:       "full_access",
		SpaceSlug:   s.opts.SpaceSlug,
		DisplayName: a.user.DisplayName,
		Iss:         issuer,
		SpaceAdmin:  a.admin,
		Email:       a.user.Email,
		Username:    a.user.Username,
	})
}

func (s *Server) signJWT(c claims) string {
	payload := base64.RawURLEncoding.EncodeToString(mustJSON(c))
	signing := jwtHeader + "." + payload
	return signing + "." + base64.RawURLEncoding.EncodeToString(s.mac(signing))
}

func (s *Server) mac(signing string) []byte {
	h := hmac.New(sha256.New, s.jwtKey)
	h.Write([]byte(signing))
	return h.Sum(nil)
}

var (
	errBadToken     = errors.New("invalid token")
	errExpiredToken = errors.New("token expired")
)

// verifyJWT checks the signature, issuer and expiry of an access token.
func (s *Server) verifyJWT(tok string) (claims, error) {
	head, rest, ok := strings.Cut(tok, ".")
	if !ok || head != jwtHeader {
		return claims{}, errBadToken
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return claims{}, errBadToken
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(head+"."+payload)) {
		return claims{}, errBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return claims{}, errBadToken
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil || c.Iss != issuer || c.Username == "" {
		return claims{}, errBadToken
	}
	if s.now().Unix() >= c.Exp {
		return claims{}, errExpiredToken
	}
	return c, nil
}

// bearer authenticates a REST request by its Authorization: Bearer header.
func (s *Server) bearer(r *http.Request) (claims, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return claims{}, errBadToken
	}
	return s.verifyJWT(strings.TrimSpace(tok))
}

// SetTokenLifetime sets the lifetime of tokens issued from now on; tokens already issued
// keep theirs. Zero or negative lifetimes issue tokens that are already expired.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.lifetime.Store(int64(d))
}

func (s *Server) tokenLifetime() time.Duration { return time.Duration(s.lifetime.Load()) }

// Token returns a valid access token for a registered user, as if it had asked the token
// endpoint; handy for tests that want to skip the OAuth round trip.
func (s *Server) Token(username string) (string, error) {
	s.usersMu.RLock()
	a, ok := s.users[username]
	s.usersMu.RUnlock()
	if !ok {
		return "", ErrNotFound
	}
	return s.signJWT(claims{
		ClientID: username, DisplayName: a.user.DisplayName, Email: a.user.Email,
		Exp: s.now().Add(s.tokenLifetime()).Unix(), Iss: issuer, SpaceAdmin: a.admin,
		SpaceSlug: s.opts.SpaceSlug, Username: username,
	}), nil
}
