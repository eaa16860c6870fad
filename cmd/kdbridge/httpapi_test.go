package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
)

// TestReadyzNotBeforeSourcesStart: the HTTP listener is up before the sources are started,
// and a daemon with no sources yet has nothing that is not ready; it must still not say ready.
func TestReadyzNotBeforeSourcesStart(t *testing.T) {
	d := &daemon{sources: map[string]*liveSource{}}
	d.met = newMetrics(d.currentSources, func() []bridge.Sink { return nil }, func() []bridge.SinkBacklog { return nil })
	h := httpHandler(d)
	get := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w
	}
	if w := get(); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "starting") {
		t.Errorf("/readyz before the sources started = %d %q", w.Code, w.Body.String())
	}
	d.started.Store(true)
	if w := get(); w.Code != http.StatusOK || w.Body.String() != "ready\n" {
		t.Errorf("/readyz once started (no sources) = %d %q", w.Code, w.Body.String())
	}
}
