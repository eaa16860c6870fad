package kinetic

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kdbridge/kdbridge/sources/kinetic/kinetictest"
)

// Issue 16.7: a url that is not a Kinetic space answers the token or socket path with
// something else than Kinetic would; the error says to check url, not the credentials.
func TestNotKineticAnswersSayCheckURL(t *testing.T) {
	const html = "<!DOCTYPE html><html><head><title>Acme Corp</title></head><body>Sign in</body></html>"
	cases := []struct {
		name, path, contentType, body string
		status                        int
	}{
		{"401 HTML login page", "/app/oauth/token", "text/html; charset=utf-8", html, http.StatusUnauthorized},
		{"404 on the token path", "/app/oauth/token", "application/json", `{"error":"Not Found"}`, http.StatusNotFound},
		{"200 HTML", "/app/oauth/token", "text/html", html, http.StatusOK},
		{"200 JSON without access_token", "/app/oauth/token", "application/json", `{"status":"ok"}`, http.StatusOK},
		{"404 on the socket path", "/app/topics/socket", "text/html", html, http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newSim(t, kinetictest.Options{})
			d := srv.CreateDiscussion(kinetictest.DiscussionSpec{Title: "x"})
			srv.AnswerForeign(tc.path, tc.status, tc.contentType, tc.body)
			h := start(t, srv, []string{d.ID})
			eventually(t, "the problem logged", func() bool { return len(h.logs.lines("check url")) > 0 })
			h.stop()
			line := h.logs.lines("check url")[0]
			if strings.Contains(h.logs.String(), "check client_id") {
				t.Errorf("blamed on the credentials:\n%s", h.logs.String())
			}
			if tc.path == "/app/oauth/token" && !strings.Contains(line, "level=ERROR") {
				t.Errorf("a url that is not Kinetic's is a configuration error:\n%s", line)
			}
			if strings.Contains(h.logs.String(), testSecret) {
				t.Error("the secret is in the log")
			}
			if st := h.src.Status(); st.Identified || !strings.Contains(st.LastError, "check url") {
				t.Errorf("status: identified %t, last error %q", st.Identified, st.LastError)
			}
		})
	}
}
