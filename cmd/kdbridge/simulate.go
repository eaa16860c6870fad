package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// runSimulate serves the Kinetic simulator on its own, for docker-compose and manual tests.
func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("simulate", stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	id := fs.String("client-id", "integration-user", "OAuth client id (the username) the token endpoint accepts")
	secret := fs.String("client-secret", "integration-secret", "OAuth client secret the token endpoint accepts")
	chatter := fs.Duration("chatter", 0, "if set, simulated users post in the sample discussions this often (e.g. 3s)")
	publicURL := fs.String("public-url", "", "space URL to advertise, when clients reach the simulator by another name (docker-compose)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	sim := kinetictest.NewHandler(kinetictest.Options{ClientID: *id, ClientSecret: *secret})
	defer sim.Close()
	url := *publicURL
	if url == "" {
		url = "http://" + ln.Addr().String()
	}
	sim.SetURL(url)
	discussions := sim.SeedSamples()
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()

	fmt.Fprintf(stdout, "Kinetic simulator serving space %s\n", url)
	fmt.Fprintf(stdout, "  token:        POST %s/app/oauth/token?grant_type=client_credentials&response_type=token\n", url)
	fmt.Fprintf(stdout, "  topic hub:    %s/app/topics/socket\n", wsURL(url))
	fmt.Fprintf(stdout, "  REST:         %s/app/discussions/api/v1\n", url)
	fmt.Fprintf(stdout, "  credentials:  client_id=%s client_secret=%s (simulator only)\n", *id, *secret)
	fmt.Fprintln(stdout, "  discussions:")
	for _, d := range discussions {
		fmt.Fprintf(stdout, "    %s  %s\n", d.ID, d.Title)
	}
	fmt.Fprintln(stdout, "  users:        alice/alice-secret, bob/bob-secret, carol/carol-secret (post as them: kdbridge never mirrors its own user)")
	if len(discussions) > 0 {
		fmt.Fprintf(stdout, "Post a message as alice:\n  TOKEN=$(curl -s -u alice:alice-secret -X POST '%s/app/oauth/token?grant_type=client_credentials&response_type=token' | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n", url)
		fmt.Fprintf(stdout, "  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{\"content\":[{\"type\":\"text\",\"value\":\"hello\"}]}' %s/app/discussions/api/v1/discussions/%s/messages\n", url, discussions[0].ID)
	}

	chatCtx, stopChat := context.WithCancel(ctx)
	chatDone := make(chan struct{})
	go func() {
		defer close(chatDone)
		ids := make([]string, len(discussions))
		for i, d := range discussions {
			ids[i] = d.ID
		}
		sim.Chatter(chatCtx, *chatter, ids)
	}()
	defer func() { stopChat(); <-chatDone }()

	select {
	case <-ctx.Done():
	case err := <-done:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("simulate: %w", err)
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sim.Close() // closes websockets so Shutdown need not wait for them
	_ = srv.Shutdown(shutCtx)
	return nil
}

func wsURL(u string) string {
	switch {
	case len(u) > 5 && u[:5] == "https":
		return "wss" + u[5:]
	case len(u) > 4 && u[:4] == "http":
		return "ws" + u[4:]
	}
	return u
}
