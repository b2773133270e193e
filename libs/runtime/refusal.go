package runtime

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refusal tracks Danube refusing the connector's credentials: a rejected token or a broker
// certificate the connector does not trust. Retrying cannot fix either, so the first failure is
// logged at once with its cause (the client's own retries would otherwise hide it for half a
// minute), and after DANUBE_FAIL_AFTER_MS of nothing but refusals the connector stops, so that the
// orchestrator shows a failing container rather than a silent one.
type refusal struct {
	log       *slog.Logger
	failAfter time.Duration

	mu     sync.Mutex
	since  time.Time // first refusal of the current run of them; zero = none
	logged time.Time
}

// refused reports whether err is a credential or trust refusal.
func refused(err error) bool {
	if err == nil {
		return false
	}
	if status.Code(err) == grpccodes.Unauthenticated {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "x509: ") || strings.Contains(msg, "tls: ")
}

// observe records a failed call to Danube; it logs a refusal at once (then every 30 s).
func (r *refusal) observe(err error) {
	if r == nil || !refused(err) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.since.IsZero() {
		r.since = now
	}
	if now.Sub(r.logged) >= 30*time.Second {
		r.logged = now
		r.log.Error("Danube refused the connection: check DANUBE_TOKEN/DANUBE_TOKEN_FILE and DANUBE_CA_FILE; "+
			"the connector stops if this goes on", "stops_after", r.failAfter, "err", err)
	}
}

// ok records a call that got through.
func (r *refusal) ok() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.since = time.Time{}
	r.mu.Unlock()
}

// expired reports whether refusals have gone on for DANUBE_FAIL_AFTER_MS.
func (r *refusal) expired() bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failAfter > 0 && !r.since.IsZero() && time.Since(r.since) >= r.failAfter
}

// errRefused wraps the last refusal when the connector gives up.
var errRefused = errors.New("connection refused by Danube")
