package slack

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
)

// The event a sink delivers is shared with the other targets of the same event (see
// bridge.Delivery): formatting, threading and edits must read it and never change it.
func TestDeliverDoesNotModifyTheEvent(t *testing.T) {
	f := newFake(t)
	s := newSink(t, baseConfig(f), newMemKV())
	mk := func(typ string) bridge.Event {
		e := event(typ, "d1", "m1", "", "DB is <down> & *bold*")
		e.Message.Content = append(e.Message.Content, bridge.Token{Type: "mention", Name: "bob", Value: json.RawMessage(`{"username":"bob"}`)})
		e.Message.Attachments = []bridge.Attachment{{Filename: "trace.txt", Size: 12, URL: "https://acme.kinops.io/f/1"}}
		e.Raw = json.RawMessage(`{"id":"m1"}`)
		return e
	}
	for _, typ := range []string{bridge.MessageCreated, bridge.MessageUpdated, bridge.MessageDeleted} {
		e, want := mk(typ), mk(typ)
		deliver(t, s, e, "")
		if !reflect.DeepEqual(e, want) {
			t.Fatalf("%s: delivering changed the event:\n got %+v\nwant %+v", typ, e, want)
		}
	}
}
