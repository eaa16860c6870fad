package webhook_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdbridge/kdbridge/sinks/webhook"
)

// TestConnectionErrorShowsTheURLWithoutItsSecrets: a transport error names the endpoint; only
// its secret parts (query, user info, the path of a URL from url_file) become "<secret>".
func TestConnectionErrorShowsTheURLWithoutItsSecrets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every delivery is a connection error

	plain := "http://" + addr + "/hooks/in"
	err = deliver(t, newSink(t, webhook.Config{URL: plain}, webhook.Options{}), messageEvent())
	if err == nil || !strings.Contains(err.Error(), plain) || strings.Contains(err.Error(), "<secret>") {
		t.Errorf("a URL without secrets must be shown as it is: %v", err)
	}

	withToken := "http://user:pa55w0rd-xyz@" + addr + "/hooks/in?token=tok-abcdef123456"
	err = deliver(t, newSink(t, webhook.Config{URL: withToken}, webhook.Options{}), messageEvent())
	if err == nil || !strings.Contains(err.Error(), "http://"+addr+"/hooks/in") ||
		strings.Contains(err.Error(), "tok-abcdef123456") || strings.Contains(err.Error(), "pa55w0rd-xyz") {
		t.Errorf("query and user info must be hidden, host and path shown: %v", err)
	}

	file := filepath.Join(t.TempDir(), "url")
	secretPath := "http://" + addr + "/api/webhooks/1234/AbCdEfGhIjKlMnOpQrStUv"
	if err := os.WriteFile(file, []byte(secretPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = deliver(t, newSink(t, webhook.Config{URLFile: file}, webhook.Options{}), messageEvent())
	if err == nil || !strings.Contains(err.Error(), "http://"+addr+"/…") || strings.Contains(err.Error(), "AbCdEfGhIjKlMnOpQrStUv") {
		t.Errorf("a URL from url_file shows only scheme and host: %v", err)
	}
}
