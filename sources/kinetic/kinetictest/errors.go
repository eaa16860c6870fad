package kinetictest

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Errors returned by the Go API; the REST handlers map them to statuses.
var (
	ErrNotFound   = errors.New("kinetictest: not found")
	ErrArchived   = errors.New("kinetictest: discussion is archived")
	ErrBadRequest = errors.New("kinetictest: bad request")
	ErrForbidden  = errors.New("kinetictest: forbidden")
	ErrConflict   = errors.New("kinetictest: already exists")
)

// statusOf maps an operation error to the HTTP status and errorKey the REST API answers.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, ErrArchived):
		// "Archived discussions do not allow new messages" (§5.1).
		return http.StatusBadRequest, "discussion_archived"
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "bad_request"
	default:
		return http.StatusInternalServerError, "server_error"
	}
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes the Kinetic error body {"error","errorKey"} (§4).
func writeError(w http.ResponseWriter, status int, key, msg string) {
	writeJSON(w, status, errorBody{Error: msg, ErrorKey: key})
}

// writeOpError writes the error body for an operation error.
func writeOpError(w http.ResponseWriter, err error) {
	status, key := statusOf(err)
	writeError(w, status, key, err.Error())
}
