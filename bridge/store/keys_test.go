package store

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/kdbridge/kdbridge/bridge"
)

// Queue keys are on disk: building them in place must spell exactly the layout's
// uvarint(len(Target.Key())) ‖ Target.Key() ‖ uvarint(len(discussion)) ‖ discussion.
func TestQueuePrefixIsTheLayouts(t *testing.T) {
	long := string(bytes.Repeat([]byte{'x'}, 200)) // a length of two varint bytes
	for _, q := range []bridge.Queue{
		{Target: bridge.Target{Route: "r", Sink: "hook"}, Discussion: "d"},
		{Target: bridge.Target{Route: "r\x00", Sink: "\x00s", Channel: "C1"}, Discussion: "\xff"},
		{Target: bridge.Target{}, Discussion: ""},
		{Target: bridge.Target{Route: long, Sink: "s", Channel: long}, Discussion: long},
	} {
		tk := q.Target.Key()
		want := binary.AppendUvarint(nil, uint64(len(tk)))
		want = append(want, tk...)
		want = binary.AppendUvarint(want, uint64(len(q.Discussion)))
		want = append(want, q.Discussion...)
		if got := queuePrefix(q); !bytes.Equal(got, want) {
			t.Errorf("queuePrefix(%q) = %x, want %x", q, got, want)
		}
		if got := appendQueuePrefix([]byte("ab"), q); !bytes.Equal(got, append([]byte("ab"), want...)) {
			t.Errorf("appendQueuePrefix(%q) = %x", q, got)
		}
		key := pendingKey(q, 7)
		if p, seq, err := splitPendingKey(key); err != nil || seq != 7 || !bytes.Equal(p, want) {
			t.Errorf("splitPendingKey(pendingKey(%q, 7)) = %x, %d, %v", q, p, seq, err)
		}
	}
}
