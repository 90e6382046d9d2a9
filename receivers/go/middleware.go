package vizochok

// An http.Handler middleware around Verify and VerifyEvent / VerifyStandardWebhook: the
// request is read (at most MaxBodyBytes), verified, and only then handed on with its body
// readable again; each delivery id is handled once.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// DefaultMaxBodyBytes is the largest body read (1 MiB), as the Python kit's.
const DefaultMaxBodyBytes = 1 << 20

// Signature schemes of an event endpoint (docs/webhooks.md §8).
const (
	SchemeVizochok         = "vizochok"
	SchemeStandardWebhooks = "standard-webhooks"
)

// Middleware verifies every request before Next sees it.  Zero values mean the defaults.
type Middleware struct {
	// Secrets returns the secrets to accept, current first; read on every request, so a
	// running server can switch while a secret is rolled.
	Secrets func() []string
	// Scheme: "" verifies synchronous calls (products, cart, cart GET); SchemeVizochok or
	// SchemeStandardWebhooks verifies event requests and puts the *Event in the context.
	Scheme       string
	Tolerance    time.Duration    // DefaultTolerance
	MaxBodyBytes int64            // DefaultMaxBodyBytes
	Now          func() time.Time // time.Now
	// Once answers a repeated delivery id (X-VIZOCHOK-Delivery, or the event's id) with the
	// first complete answer instead of calling Next again; a 5xx keeps nothing, so the retry
	// runs. In memory, 10,000 ids for 10 minutes: with several processes, deduplicate in your
	// own store too.
	Once bool

	mu      sync.Mutex
	answers map[string]*answer
	order   []string
}

type answer struct {
	digest [32]byte
	done   bool
	status int
	header http.Header
	body   []byte
	at     time.Time
}

type contextKey int

const (
	verifiedKey contextKey = iota
	eventKey
)

// VerifiedFrom is what the middleware proved about a synchronous call (nil outside it).
func VerifiedFrom(ctx context.Context) *Verified {
	v, _ := ctx.Value(verifiedKey).(*Verified)
	return v
}

// EventFrom is the verified event of an event request (nil outside the middleware).
func EventFrom(ctx context.Context) *Event {
	e, _ := ctx.Value(eventKey).(*Event)
	return e
}

// Handler wraps next.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := m.MaxBodyBytes
		if limit <= 0 {
			limit = DefaultMaxBodyBytes
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			writeRefusal(w, http.StatusBadRequest, "unreadable_body", "the body could not be read")
			return
		}
		if int64(len(body)) > limit {
			writeRefusal(w, http.StatusRequestEntityTooLarge, "body_too_large", "the body is larger than allowed")
			return
		}
		tolerance, now := m.Tolerance, time.Now()
		if tolerance == 0 {
			tolerance = DefaultTolerance
		}
		if m.Now != nil {
			now = m.Now()
		}
		var secrets []string
		if m.Secrets != nil {
			secrets = m.Secrets()
		}
		ctx, key, err := m.verify(r, body, secrets, tolerance, now)
		if err != nil {
			var refusal *Error
			if !errors.As(err, &refusal) {
				writeRefusal(w, http.StatusInternalServerError, "internal_error", "the receiver is misconfigured")
				return
			}
			status := http.StatusUnauthorized
			if refusal.Code == CodeInvalidEvent {
				status = http.StatusBadRequest
			}
			writeRefusal(w, status, refusal.Code, refusal.Detail)
			return
		}
		r = r.WithContext(ctx)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !m.Once || key == "" {
			next.ServeHTTP(w, r)
			return
		}
		m.once(w, r, next, key, sha256.Sum256(body), now)
	})
}

func (m *Middleware) verify(r *http.Request, body []byte, secrets []string, tolerance time.Duration, now time.Time) (context.Context, string, error) {
	switch m.Scheme {
	case "":
		verified, err := Verify(r.Header, body, secrets, tolerance, now)
		if err != nil {
			return nil, "", err
		}
		return context.WithValue(r.Context(), verifiedKey, verified), verified.DeliveryID, nil
	case SchemeVizochok, SchemeStandardWebhooks:
		verify := VerifyEvent
		if m.Scheme == SchemeStandardWebhooks {
			verify = VerifyStandardWebhook
		}
		event, err := verify(r.Header, body, secrets, tolerance, now)
		if err != nil {
			return nil, "", err
		}
		return context.WithValue(r.Context(), eventKey, event), event.ID, nil
	default:
		return nil, "", errors.New("vizochok: unknown Scheme " + m.Scheme)
	}
}

func (m *Middleware) once(w http.ResponseWriter, r *http.Request, next http.Handler, key string, digest [32]byte, now time.Time) {
	m.mu.Lock()
	if m.answers == nil {
		m.answers = map[string]*answer{}
	}
	m.prune(now)
	held, found := m.answers[key]
	switch {
	case found && held.digest != digest:
		m.mu.Unlock()
		writeRefusal(w, http.StatusConflict, "delivery_id_reused", "this delivery id came before with another body")
		return
	case found && !held.done:
		m.mu.Unlock()
		writeRefusal(w, http.StatusConflict, "delivery_in_progress", "this delivery id is still being handled")
		return
	case found:
		m.mu.Unlock()
		for name, values := range held.header {
			w.Header()[name] = values
		}
		w.Header().Set("Idempotent-Replay", "true")
		w.WriteHeader(held.status)
		_, _ = w.Write(held.body)
		return
	}
	m.answers[key] = &answer{digest: digest, at: now}
	m.order = append(m.order, key)
	m.mu.Unlock()

	recorder := &recorder{ResponseWriter: w, status: http.StatusOK}
	completed := false
	defer func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		// A failed attempt keeps nothing, so VIZOCHOK's retry runs normally.
		if !completed || recorder.status >= 500 {
			delete(m.answers, key)
			return
		}
		held := m.answers[key]
		held.done, held.status, held.header, held.body = true, recorder.status, w.Header().Clone(), recorder.body.Bytes()
	}()
	next.ServeHTTP(recorder, r)
	completed = true
}

// prune forgets answers older than 10 minutes (longer than the signature window) and the
// oldest beyond 10,000; the caller holds mu.
func (m *Middleware) prune(now time.Time) {
	for len(m.order) > 0 {
		held, found := m.answers[m.order[0]]
		if found && now.Sub(held.at) < 10*time.Minute && len(m.order) <= 10000 {
			return
		}
		if found && !held.done && now.Sub(held.at) < 10*time.Minute {
			return // still being handled
		}
		delete(m.answers, m.order[0])
		m.order = m.order[1:]
	}
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

func writeRefusal(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "message": message})
}
