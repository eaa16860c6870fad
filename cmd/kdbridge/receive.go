package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// runReceive runs a webhook receiver that verifies Standard Webhooks signatures and prints
// each delivery: the other end of docker-compose's demo, and a way to watch a webhook sink.
func runReceive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("receive", stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	secret := fs.String("secret", "", "whsec_ secret to verify signatures with")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *secret == "" {
		return fmt.Errorf("%w: -secret is required", errUsage)
	}
	if _, err := webhook.DecodeSecret(*secret); err != nil {
		return fmt.Errorf("%w: -secret %v", errUsage, err)
	}
	out := &lockedWriter{w: stdout}
	r, err := startReceiver(*listen, *secret, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "receiving webhooks at %s\n", r.URL)
	<-ctx.Done()
	r.Close()
	fmt.Fprintf(out, "%d deliveries verified, %d with a bad signature\n", r.ok.Load(), r.bad.Load())
	return nil
}

// receiver is a webhook endpoint for the demo and `kdbridge receive`: it verifies each Standard Webhooks signature
// from the spec and prints the delivery.
type receiver struct {
	URL     string
	srv     *http.Server
	ok, bad atomic.Int64
}

func startReceiver(listen, secret string, out io.Writer) (*receiver, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	r := &receiver{URL: "http://" + ln.Addr().String() + "/hook"}
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		verified := false
		for _, sig := range strings.Fields(req.Header.Get("webhook-signature")) {
			verified = verified || hmac.Equal([]byte(sig), []byte(want))
		}
		if !verified {
			r.bad.Add(1)
			fmt.Fprintf(out, "webhook  ✗ bad signature for %s\n", id)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		r.ok.Add(1)
		var env struct {
			Type string `json:"type"`
			Data struct {
				Discussion struct{ Title string } `json:"discussion"`
				Message    *struct {
					Text   string `json:"text"`
					Author struct {
						DisplayName string `json:"display_name"`
					} `json:"author"`
				} `json:"message"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &env)
		line := env.Type
		if m := env.Data.Message; m != nil {
			line = fmt.Sprintf("%-16s %s: %s", env.Type, m.Author.DisplayName, m.Text)
		}
		fmt.Fprintf(out, "webhook  ✓ signed  [%s] %s\n", env.Data.Discussion.Title, line)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() {
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(out, "receiver:", err)
		}
	}()
	return r, nil
}

func (r *receiver) Close() { _ = r.srv.Close() }
