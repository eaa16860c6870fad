package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
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
	return newSigner(keys).sign(id, ts, body)
}

// signer computes signature for a sink's keys. It keeps each key's HMAC state in a pool:
// hmac.New allocates two SHA-256 states and both pads on every call, and every delivery
// signs.
type signer struct {
	pools []sync.Pool // of hash.Hash, one pool per key
}

func newSigner(keys [][]byte) *signer {
	g := &signer{pools: make([]sync.Pool, len(keys))}
	for i, key := range keys {
		g.pools[i].New = func() any { return hmac.New(sha256.New, key) }
	}
	return g
}

func (g *signer) sign(id string, ts int64, body []byte) string {
	var b strings.Builder
	b.Grow(len(g.pools) * (3 + base64.StdEncoding.EncodedLen(sha256.Size) + 1))
	// "{id}.{timestamp}." in one write; ids are short, a longer one is written as it is.
	var headBuf [128]byte
	head := append(headBuf[:0], id...)
	head = append(head, '.')
	head = strconv.AppendInt(head, ts, 10)
	head = append(head, '.')
	var sum [sha256.Size]byte
	var enc [44]byte // base64 of 32 bytes
	for i := range g.pools {
		mac := g.pools[i].Get().(hash.Hash)
		mac.Reset()
		mac.Write(head)
		mac.Write(body)
		base64.StdEncoding.Encode(enc[:], mac.Sum(sum[:0]))
		g.pools[i].Put(mac)
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
