package console

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/kdbridge/kdbridge/bridge"
)

// BenchmarkDeliveriesPage serves the deliveries page over a history of 100,000 attempts
// across 10,000 discussions: the newest page, and one discussion's attempts.
func BenchmarkDeliveriesPage(b *testing.B) {
	srv, st := pagesServer(b)
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	for chunk := range 100 {
		recs := make([]bridge.AttemptRecord, 1000)
		for i := range recs {
			n := chunk*1000 + i
			recs[i] = bridge.AttemptRecord{Queue: bridge.Queue{Target: bridge.Target{Route: "all", Sink: "hook"}, Discussion: fmt.Sprintf("disc-%05d", n%10000)},
				EventID: fmt.Sprintf("evt_%08d", n), EventType: bridge.MessageCreated, Attempt: 1, At: t0.Add(time.Duration(n) * time.Millisecond),
				Outcome: bridge.OutcomeDelivered, Latency: time.Millisecond}
		}
		if err := st.LogAttempts(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	for _, page := range []string{"/deliveries", "/deliveries?discussion=disc-04242", "/deliveries?event=evt_00004242", "/deliveries?outcome=dead_letter"} {
		b.Run(page, func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Get(srv.URL + page)
				if err != nil || resp.StatusCode != 200 {
					b.Fatal(err, resp.Status)
				}
				resp.Body.Close()
			}
		})
	}
}
