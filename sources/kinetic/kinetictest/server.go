package kinetictest

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server. The zero value is usable: every field has a default.
type Options struct {
	// ClientID and ClientSecret are the Basic credentials the token endpoint accepts
	// (the client id is the integration user's username); defaults "integration-user" /
	// "integration-secret". That user is a space admin.
	ClientID, ClientSecret string
	// DisplayName and Email describe that user; defaults "Integration User",
	// "integration-user@example.com".
	DisplayName, Email string
	// SpaceSlug is the space the tokens name; default "acme".
	SpaceSlug string
	// TokenLifetime is the lifetime of issued tokens; default 43199s, as in the reference.
	TokenLifetime time.Duration
	// Now is the clock for timestamps and token expiry; default time.Now.
	Now func() time.Time

	// SendBuffer is the number of frames queued per websocket connection before the
	// connection counts as a slow consumer and is closed; default 4096.
	SendBuffer int
	// PingInterval, if positive, makes the server send websocket pings that often. The real
	// server's behaviour is unknown (§9.2); the default is none.
	PingInterval time.Duration
	// IdleTimeout, if positive, closes a connection that sent nothing (no frame, no pong)
	// for that long. Default none: the real server's idle timeout is unknown (§7). Stall
	// does not pause it: a stall longer than IdleTimeout ends with the connection closed.
	IdleTimeout time.Duration
	// ListDelay, if positive, makes every message listing (GET …/messages) take at least
	// that long, as a loaded server would; with it, Stats.MaxMessageListings shows how many
	// listings a client runs at once.
	ListDelay time.Duration
}

func (o *Options) setDefaults() {
	if o.ClientID == "" {
		o.ClientID = "integration-user"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "integration-secret"
	}
	if o.DisplayName == "" {
		o.DisplayName = "Integration User"
	}
	if o.Email == "" {
		o.Email = "integration-user@example.com"
	}
	if o.SpaceSlug == "" {
		o.SpaceSlug = "acme"
	}
	if o.TokenLifetime == 0 {
		o.TokenLifetime = 43199 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SendBuffer <= 0 {
		o.SendBuffer = 4096
	}
}

// Server is the simulated Kinetic server side. All methods are safe for concurrent use.
type Server struct {
	opts    Options
	jwtKey  []byte
	handler http.Handler
	ts      *httptest.Server // nil for NewHandler servers

	lifetime atomic.Int64 // time.Duration of new tokens

	usersMu sync.RWMutex
	users   map[string]account
	clients map[string]oauthClient // by client id; see AddClient

	store  *store
	hub    hub
	faults faults
	stats  counters

	urlMu sync.RWMutex
	url   string

	wg        sync.WaitGroup // every connection's reader and writer
	closeOnce sync.Once
}

// NewServer returns a Server listening on a random loopback port; URL returns its space URL.
func NewServer(opts Options) *Server {
	s := NewHandler(opts)
	s.ts = httptest.NewServer(s.handler)
	s.SetURL(s.ts.URL)
	return s
}

// NewHandler returns a Server that does not listen: serve Handler yourself (as
// `kdbridge simulate` does). Close still closes its websockets and stops its goroutines.
func NewHandler(opts Options) *Server {
	opts.setDefaults()
	s := &Server{
		opts:   opts,
		jwtKey: make([]byte, 32),
		users:  make(map[string]account),
		store:  newStore(),
		hub:    hub{conns: make(map[*conn]struct{})},
	}
	_, _ = rand.Read(s.jwtKey)
	s.lifetime.Store(int64(opts.TokenLifetime))
	s.users[opts.ClientID] = account{
		user:     User{Username: opts.ClientID, DisplayName: opts.DisplayName, Email: opts.Email},
		password: opts.ClientSecret,
		admin:    true,
	}
	s.handler = s.routes()
	return s
}

// Handler returns the server's HTTP handler: token endpoint, REST API and Topic Hub.
func (s *Server) Handler() http.Handler { return s.handler }

// URL returns the space URL, e.g. http://127.0.0.1:PORT; "" for a NewHandler server until
// SetURL is called.
func (s *Server) URL() string {
	s.urlMu.RLock()
	defer s.urlMu.RUnlock()
	return s.url
}

// SetURL records the space URL under which the handler is served.
func (s *Server) SetURL(u string) {
	s.urlMu.Lock()
	defer s.urlMu.Unlock()
	s.url = u
}

// IntegrationUser returns the user of Options.ClientID, the author of CreateDiscussion.
func (s *Server) IntegrationUser() User {
	return s.integration().user
}

func (s *Server) integration() actor {
	s.usersMu.RLock()
	defer s.usersMu.RUnlock()
	a := s.users[s.opts.ClientID]
	return actor{user: a.user, admin: a.admin}
}

func (s *Server) now() time.Time { return s.opts.Now() }

func (s *Server) nowString() string { return formatTime(s.now()) }

// Close closes the listener (NewServer) and every websocket, and waits for every goroutine
// the server started. Calling it more than once is harmless.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.hub.mu.Lock()
		s.hub.closed = true
		conns := s.hub.snapshotLocked()
		s.hub.mu.Unlock()
		for _, c := range conns {
			c.closeGoingAway()
		}
		if s.ts != nil {
			s.ts.Close()
		}
		s.wg.Wait()
	})
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/app/oauth/token", s.handleToken)
	mux.HandleFunc("GET /app/topics/socket", s.handleSocket)
	mux.HandleFunc("GET /app/topics/api/v1/version", s.handleVersion)
	mux.HandleFunc("GET /app/api/v1/version", s.handleVersion)

	const api = "/app/discussions/api/v1"
	rest := func(pattern string, h restHandler) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.Handle(method+" "+api+path, s.rest(h))
	}
	rest("GET /version", s.restVersion)
	rest("GET /discussions", s.listDiscussions)
	rest("POST /discussions", s.createDiscussionREST)
	rest("GET /discussions/{id}", s.getDiscussion)
	rest("PUT /discussions/{id}", s.updateDiscussionREST)
	rest("DELETE /discussions/{id}", s.deleteDiscussionREST)
	rest("GET /discussions/{id}/messages", s.listMessages)
	rest("POST /discussions/{id}/messages", s.createMessageREST)
	rest("GET /discussions/{id}/messages/{mid}", s.getMessage)
	rest("PUT /discussions/{id}/messages/{mid}", s.updateMessageREST)
	rest("POST /discussions/{id}/messages/{mid}", s.updateMessageREST) // multipart form of the browser client
	rest("DELETE /discussions/{id}/messages/{mid}", s.deleteMessageREST)
	rest("GET /discussions/{id}/messages/{mid}/versions", s.messageVersions)
	rest("GET /discussions/{id}/messages/{mid}/files/{doc}/{filename}", s.downloadFile)
	rest("GET /discussions/{id}/participants", s.listParticipants)
	rest("POST /discussions/{id}/participants", s.createParticipantREST)
	rest("GET /discussions/{id}/participants/{username}", s.getParticipant)
	rest("PUT /discussions/{id}/participants/{username}", s.updateParticipantREST)
	rest("DELETE /discussions/{id}/participants/{username}", s.deleteParticipantREST)
	rest("GET /discussions/{id}/invitations", s.listInvitations)
	rest("POST /discussions/{id}/invitations", s.createInvitationREST)
	rest("GET /discussions/{id}/invitations/{key}", s.getInvitation)
	rest("PUT /discussions/{id}/invitations/{key}", s.resendInvitationREST)
	rest("DELETE /discussions/{id}/invitations/{key}", s.deleteInvitationREST)
	rest("GET /discussions/{id}/relatedItems", s.listRelatedItems)
	rest("POST /discussions/{id}/relatedItems", s.createRelatedItemREST)
	rest("GET /discussions/{id}/relatedItems/{type}/{key}", s.getRelatedItem)
	rest("DELETE /discussions/{id}/relatedItems/{type}/{key}", s.deleteRelatedItemREST)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "No route for "+r.Method+" "+r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := s.faults.foreignAnswer(r.URL.Path); ok {
			w.Header().Set("Content-Type", a.contentType)
			w.WriteHeader(a.status)
			_, _ = w.Write([]byte(a.body))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// versionBody is the shape of Core's /version (§1); the discussions and topics versions
// are returned raw by clients, so the same shape serves.
type versionBody struct {
	Version struct {
		BuildDate   string `json:"buildDate"`
		BuildNumber string `json:"buildNumber"`
		Timestamp   string `json:"timestamp"`
		Version     string `json:"version"`
	} `json:"version"`
}

func newVersionBody() versionBody {
	var v versionBody
	v.Version.BuildDate = "2022-11-01T00:00:00.000Z"
	v.Version.BuildNumber = "kinetictest"
	v.Version.Timestamp = v.Version.BuildDate
	v.Version.Version = "5.0.0"
	return v
}

// handleVersion serves the Core and Topics version endpoints, which need no token.
func (s *Server) handleVersion(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, newVersionBody())
}
