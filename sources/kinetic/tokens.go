package kinetic

import (
	"context"
	"net/http"

	"github.com/kdbridge/kdbridge/internal/config"
)

// Tokens gets and caches the access tokens of a Kinetic space for the integration user, the
// same way the source does (client_credentials, Basic auth unescaped, one fresh token after
// a 401). It is what the Kinetic sink uses to write into discussions, so that there is one
// token machinery for both directions. It is safe for concurrent use.
type Tokens struct{ ts *tokenSource }

// NewTokens returns the token machinery of the space at spaceURL (as in Config.URL) for the
// OAuth client clientID. client carries the token requests.
func NewTokens(spaceURL, clientID string, secret config.Secret, client *http.Client) *Tokens {
	return &Tokens{ts: newTokenSource(spaceURL, clientID, secret, client)}
}

// Token returns a valid access token, from the cache or from the endpoint. The error says
// whether the credentials were refused (TokenRefused) and never carries the secret.
func (t *Tokens) Token(ctx context.Context) (string, error) {
	tok, err := t.ts.Token(ctx)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// Invalidate drops the cached token if it is still access: the server refused it (401), and
// the next Token call fetches a fresh one.
func (t *Tokens) Invalidate(access string) { t.ts.Invalidate(access) }

// Username is the user the last token was issued to ("" before the first token).
func (t *Tokens) Username() string { return t.ts.Username() }

// CredentialsRefused reports whether err says the space refused the client's credentials: retrying
// cannot help until the configuration changes.
func CredentialsRefused(err error) bool { return tokenRefused(err) }
