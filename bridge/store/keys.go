package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/kdbridge/kdbridge/bridge"
)

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// queuePrefix encodes a queue as uvarint(len(target key)) ‖ target key ‖
// uvarint(len(discussion)) ‖ discussion. The length prefixes make the encoding prefix-free:
// no queue's prefix is the beginning of another queue's key, whatever bytes route, sink,
// channel or discussion names contain, so a Seek on the prefix finds only this queue.
func queuePrefix(q bridge.Queue) []byte {
	t := &q.Target
	return appendQueuePrefix(make([]byte, 0, len(t.Route)+len(t.Sink)+len(t.Channel)+2+len(q.Discussion)+2*binary.MaxVarintLen64+8), q)
}

// appendQueuePrefix appends queuePrefix(q) to b. The target key is written in place, as
// Target.Key spells it, rather than built as a string first: queue keys are made for every
// Append, Peek and Done.
func appendQueuePrefix(b []byte, q bridge.Queue) []byte {
	t := &q.Target
	b = binary.AppendUvarint(b, uint64(len(t.Route)+len(t.Sink)+len(t.Channel)+2))
	b = append(append(b, t.Route...), 0)
	b = append(append(b, t.Sink...), 0)
	b = append(b, t.Channel...)
	b = binary.AppendUvarint(b, uint64(len(q.Discussion)))
	return append(b, q.Discussion...)
}

// pendingKey is the queue prefix followed by the delivery's sequence number.
func pendingKey(q bridge.Queue, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(queuePrefix(q), seq)
}

// splitPendingKey returns the queue prefix and the sequence number of a pending key.
func splitPendingKey(k []byte) (prefix []byte, seq uint64, err error) {
	if len(k) < 8+2 {
		return nil, 0, fmt.Errorf("malformed pending key %x", k)
	}
	return k[:len(k)-8], binary.BigEndian.Uint64(k[len(k)-8:]), nil
}

// pastPrefix is a key greater than every key that starts with prefix and smaller than every
// later key without it: Seek there skips the rest of a queue.
func pastPrefix(prefix []byte) []byte {
	return append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
}

// deadKey identifies a dead letter by its event and the index of its target in the event's
// record, which is unique per (event, target) and stable across replays.
func deadKey(eventSeq uint64, index uint32) []byte {
	return binary.BigEndian.AppendUint32(seqKey(eventSeq), index)
}

func splitDeadKey(k []byte) (eventSeq uint64, index uint32, err error) {
	if len(k) != 12 {
		return 0, 0, fmt.Errorf("malformed dead-letter key %x", k)
	}
	return binary.BigEndian.Uint64(k), binary.BigEndian.Uint32(k[8:]), nil
}

// deadLetterID is the operator-facing name of a dead letter: "dl-<event seq>-<target index>",
// short enough to type, stable for as long as the dead letter exists (also if it is replayed
// and fails again), and unique per (event, target).
func deadLetterID(eventSeq uint64, index uint32) string {
	return "dl-" + strconv.FormatUint(eventSeq, 10) + "-" + strconv.FormatUint(uint64(index), 10)
}

// parseDeadLetterID inverts deadLetterID; ok is false for anything it did not produce.
func parseDeadLetterID(id string) (key []byte, ok bool) {
	rest, found := strings.CutPrefix(id, "dl-")
	if !found {
		return nil, false
	}
	s, i, found := strings.Cut(rest, "-")
	if !found {
		return nil, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, false
	}
	index, err := strconv.ParseUint(i, 10, 32)
	if err != nil {
		return nil, false
	}
	return deadKey(seq, uint32(index)), true
}
