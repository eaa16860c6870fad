package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// TestLogConventions: JSON logs write durations as "30s", and errors under one key, "error".
func TestLogConventions(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(logConfig{Level: "info", Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("sink failing", "err", errors.New("connection refused"), "retry_in", 30*time.Second)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if line["retry_in"] != "30s" || line["error"] != "connection refused" || line["err"] != nil {
		t.Errorf("log line: %s", buf.String())
	}
}
