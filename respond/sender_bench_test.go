package respond

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchmarkReceiver is a loopback webhook receiver that reads each body
// and answers 204, as a receiver that queues the message would.
func benchmarkReceiver(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkWebhookSend measures signed webhook deliveries, one at a time,
// to a loopback receiver: encoding, signing, the HTTP round trip over a
// kept-alive connection.
func BenchmarkWebhookSend(b *testing.B) {
	srv := benchmarkReceiver(b)
	s := newTestWebhookSender(b, srv.URL, newTestSecret(b))
	m := senderTestMessage(b, TypeAlertRaised, senderTestAlert(b))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if o := s.Send(ctx, m); o.Err != nil {
			b.Fatal(o.Err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkWebhookSendParallel measures concurrent deliveries by one
// sender (the outbox runs several per responder) to a loopback receiver.
func BenchmarkWebhookSendParallel(b *testing.B) {
	srv := benchmarkReceiver(b)
	s := newTestWebhookSender(b, srv.URL, newTestSecret(b))
	m := senderTestMessage(b, TypeAlertRaised, senderTestAlert(b))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if o := s.Send(ctx, m); o.Err != nil {
				b.Error(o.Err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkWebhookEncodeSign measures the CPU a delivery costs before the
// network: encoding the payload and signing it.
func BenchmarkWebhookEncodeSign(b *testing.B) {
	key, err := decodeWebhookSecret(newTestSecret(b))
	if err != nil {
		b.Fatal(err)
	}
	m := senderTestMessage(b, TypeAlertRaised, senderTestAlert(b))
	b.ReportAllocs()
	for b.Loop() {
		body, err := EncodePayload(m)
		if err != nil {
			b.Fatal(err)
		}
		webhookSignature(key, m.ID, "1764223200", body)
	}
}
