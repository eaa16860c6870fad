package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// secretPrefix marks a Standard Webhooks symmetric secret.
const secretPrefix = "whsec_"

// The spec asks for 24 to 64 random bytes: fewer is too weak a key.
const (
	minKeyLen = 24
	maxKeyLen = 64
)

// decodeSecret returns the HMAC key of a whsec_ secret. Its errors never quote the secret.
func decodeSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("is empty")
	}
	enc, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("is not a Standard Webhooks secret: it must start with %q followed by the base64 of "+
			"%d to %d random bytes (generate one with: echo whsec_$(openssl rand -base64 32))", secretPrefix, minKeyLen, maxKeyLen)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("is not a Standard Webhooks secret: the part after %q is not standard base64", secretPrefix)
	}
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return nil, fmt.Errorf("is not a Standard Webhooks secret: it decodes to %d bytes, want %d to %d", len(key), minKeyLen, maxKeyLen)
	}
	return key, nil
}

// signature returns the webhook-signature header value: one "v1,<base64 HMAC-SHA256>" of
// "{id}.{timestamp}.{body}" per key, separated by spaces, so that a receiver holding any one
// of the keys can verify.
func signature(keys [][]byte, id string, ts int64, body []byte) string {
	var b strings.Builder
	b.Grow(len(keys) * (3 + base64.StdEncoding.EncodedLen(sha256.Size) + 1))
	var tsBuf [20]byte
	stamp := strconv.AppendInt(tsBuf[:0], ts, 10)
	var sum [sha256.Size]byte
	var enc [44]byte // base64 of 32 bytes
	for i, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write(stamp)
		mac.Write([]byte{'.'})
		mac.Write(body)
		base64.StdEncoding.Encode(enc[:], mac.Sum(sum[:0]))
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.Write(enc[:])
	}
	return b.String()
}

// DecodeSecret returns the HMAC key of a whsec_ secret, or an error saying what is wrong
// with it (never quoting it): for a receiver that verifies what this sink signs.
func DecodeSecret(s string) ([]byte, error) { return decodeSecret(s) }
