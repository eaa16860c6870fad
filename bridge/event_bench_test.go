package bridge

import "testing"

// BenchmarkEventID is the id every decoded event gets: a SHA-256 over its identifying parts,
// base32-encoded.
func BenchmarkEventID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = EventID("acme", "9fa2b330-fa5e-11e8-88ef-7bbe80231820", "5b1e0c1a-3f7d-4c5e-9a55-2d8f6a3b9e01", "", MessageCreated)
	}
}
