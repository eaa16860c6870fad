package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/kdbridge/kdbridge/internal/config"
)

// Roles. A viewer sees every page; only an admin replays, drops, re-enables or reloads.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// AuthConfig is the http.auth block. Without it the console and the operator API
// (/dlq, /-/reload) answer loopback clients only; with it they answer anyone who presents
// a token or a user's password, loopback included (a reverse proxy on the same machine
// would otherwise let everyone in).
type AuthConfig struct {
	Tokens []TokenConfig `yaml:"tokens"`
	Users  []UserConfig  `yaml:"users"`
}

// TokenConfig is a bearer token (Authorization: Bearer …) and its role.
type TokenConfig struct {
	Token     config.Secret `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
	Role      string        `yaml:"role"` // admin (default) | viewer
}

// UserConfig is a user for HTTP basic auth: a bcrypt hash of the password, never the password.
type UserConfig struct {
	Name             string        `yaml:"name"`
	PasswordHash     config.Secret `yaml:"password_hash"` // bcrypt, e.g. from `htpasswd -nbBC 10 "" PASSWORD`
	PasswordHashFile string        `yaml:"password_hash_file"`
	Role             string        `yaml:"role"` // viewer (default) | admin
}

// Enabled reports whether any credential is configured.
func (a AuthConfig) Enabled() bool { return len(a.Tokens) > 0 || len(a.Users) > 0 }

// Defaults fills the roles left out: tokens are for automation and default to admin; users
// default to viewer.
func (a *AuthConfig) Defaults() {
	for i := range a.Tokens {
		if a.Tokens[i].Role == "" {
			a.Tokens[i].Role = RoleAdmin
		}
	}
	for i := range a.Users {
		if a.Users[i].Role == "" {
			a.Users[i].Role = RoleViewer
		}
	}
}

// Validate reports every bad key, named relative to http.auth. No error shows a secret.
func (a AuthConfig) Validate() error {
	var errs []error
	role := func(field, r string) {
		if r != RoleAdmin && r != RoleViewer {
			errs = append(errs, config.Fieldf(field, "%q is not a role (admin or viewer)", r))
		}
	}
	for i, t := range a.Tokens {
		p := fmt.Sprintf("tokens[%d]", i)
		switch n := len(t.Token.Reveal()); {
		case n == 0:
			errs = append(errs, config.Fieldf(p+".token", "is required (or token_file)"))
		case n < 16:
			errs = append(errs, config.Fieldf(p+".token", "is %d characters; use at least 16 (for example `openssl rand -hex 32`)", n))
		}
		role(p+".role", t.Role)
	}
	names := map[string]bool{}
	for i, u := range a.Users {
		p := fmt.Sprintf("users[%d]", i)
		switch {
		case u.Name == "":
			errs = append(errs, config.Fieldf(p+".name", "is required"))
		case strings.Contains(u.Name, ":"):
			errs = append(errs, config.Fieldf(p+".name", "%q: a basic-auth user name cannot contain ':'", u.Name))
		case names[u.Name]:
			errs = append(errs, config.Fieldf(p+".name", "user %q appears twice", u.Name))
		}
		names[u.Name] = true
		if !u.PasswordHash.IsSet() {
			errs = append(errs, config.Fieldf(p+".password_hash", "is required (or password_hash_file): a bcrypt hash"))
		} else if _, err := bcrypt.Cost([]byte(u.PasswordHash.Reveal())); err != nil {
			errs = append(errs, config.Fieldf(p+".password_hash", "is not a bcrypt hash (it should start with $2a$, $2b$ or $2y$); store the hash, never the password"))
		}
		role(p+".role", u.Role)
	}
	return errors.Join(errs...)
}

// authenticator checks requests against an AuthConfig.
type authenticator struct {
	enabled bool
	tokens  []tokenEntry
	users   map[string]UserConfig
}

type tokenEntry struct {
	sum  [32]byte // of the token: compared in constant time whatever the lengths
	role string
}

func newAuthenticator(a AuthConfig) *authenticator {
	au := &authenticator{enabled: a.Enabled(), users: map[string]UserConfig{}}
	for _, t := range a.Tokens {
		au.tokens = append(au.tokens, tokenEntry{sum: sha256.Sum256([]byte(t.Token.Reveal())), role: t.Role})
	}
	for _, u := range a.Users {
		au.users[u.Name] = u
	}
	return au
}

// identity is who made a request.
type identity struct {
	Name string // user name, "token", or "loopback"
	Role string
}

// errUnauthenticated means no or wrong credentials.
var errUnauthenticated = errors.New("credentials required")

// identify returns the request's identity. Without auth configured, loopback clients are
// admins and everyone else is refused.
func (au *authenticator) identify(r *http.Request) (identity, error) {
	if !au.enabled {
		if isLoopback(r) {
			return identity{Name: "loopback", Role: RoleAdmin}, nil
		}
		return identity{}, errNotLoopback
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		sum := sha256.Sum256([]byte(strings.TrimSpace(h[7:])))
		role := ""
		for _, t := range au.tokens {
			if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 && role == "" {
				role = t.role
			}
		}
		if role != "" {
			return identity{Name: "token", Role: role}, nil
		}
		return identity{}, errUnauthenticated
	}
	if name, pass, ok := r.BasicAuth(); ok {
		u, known := au.users[name]
		hash := []byte(u.PasswordHash.Reveal())
		if !known {
			hash = dummyHash // spend the same time on unknown users
		}
		if bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil && known {
			return identity{Name: name, Role: u.Role}, nil
		}
	}
	return identity{}, errUnauthenticated
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password anyone has"), bcrypt.MinCost)

var errNotLoopback = errors.New("the console and the operator API answer loopback clients only; configure http.auth for remote use")

func isLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return err == nil && ip != nil && ip.IsLoopback()
}

// Guard protects the operator endpoints: it identifies the caller (401 with a Basic
// challenge, or 403 off loopback without auth), refuses cross-origin browser POSTs
// (net/http.CrossOriginProtection: Sec-Fetch-Site, then Origin against Host), and lets only
// admins through to anything that is not a GET or HEAD. The dlq command's requests carry
// no browser headers and pass the cross-origin check as any non-browser client does.
func (au *authenticator) guard(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused (CSRF protection): use the console's own pages", http.StatusForbidden)
	}))
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := au.identify(r)
		switch {
		case errors.Is(err, errNotLoopback):
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Basic realm="kdbridge", charset="UTF-8"`)
			http.Error(w, "credentials required: a bearer token or a user of http.auth", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && id.Role != RoleAdmin {
			http.Error(w, "your role ("+id.Role+") may look but not change anything", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r.WithContext(withIdentity(r.Context(), id)))
	})
	return cop.Handler(inner)
}
