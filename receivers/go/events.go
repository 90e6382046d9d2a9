package vizochok

// Event webhooks (docs/webhooks.md §8): POSTs whose body is
//
//	{"id": "evt_…", "event": "<type>", "timestamp": "<RFC 3339 UTC>", "data": {…}}
//
// signed with the endpoint's scheme: "vizochok" (Verify's signature, plus X-VIZOCHOK-Event,
// X-VIZOCHOK-Delivery = the body's id, X-VIZOCHOK-Attempt) or "standard-webhooks"
// (webhook-id, webhook-timestamp, webhook-signature "v1,<base64>" of HMAC-SHA256 keyed with
// the base64-decoded part of "whsec_…" over "<id>.<timestamp>." + body).  The same event id
// arrives again on a retry or after a crash: handle each id once.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Event header names.
const (
	EventHeader            = "X-VIZOCHOK-Event"
	AttemptHeader          = "X-VIZOCHOK-Attempt"
	WebhookIDHeader        = "webhook-id"
	WebhookTimestampHeader = "webhook-timestamp"
	WebhookSignatureHeader = "webhook-signature"
)

// CodeInvalidEvent: verified, but not an event envelope, or the delivery id is not the body's
// id; answer 400 and do not act on it.
const CodeInvalidEvent = "invalid_event"

// Event is a verified event request's envelope.  Data is left raw: decode it into your own
// struct for the type, reading amounts with json.Number (they have up to 4 decimal places).
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"event"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
	Attempt   int             `json:"-"` // X-VIZOCHOK-Attempt; 0 when absent
}

func parseEnvelope(body []byte, deliveryID string) (*Event, error) {
	var event Event
	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.UseNumber()
	if err := decoder.Decode(&event); err != nil {
		return nil, &Error{CodeInvalidEvent, "body is not an event envelope: " + err.Error()}
	}
	if event.ID == "" || event.Type == "" || event.Timestamp == "" || len(event.Data) == 0 || event.Data[0] != '{' {
		return nil, &Error{CodeInvalidEvent, "id, event, timestamp and an object data are required"}
	}
	// The body's id is signed; the header is not, so it must agree.
	if deliveryID != "" && deliveryID != event.ID {
		return nil, &Error{CodeInvalidEvent, DeliveryHeader + " must be the event's id"}
	}
	return &event, nil
}

// VerifyEvent verifies a vizochok-scheme event request and reads its envelope.  A
// *Error with CodeInvalidEvent means 400; any other *Error means 401.
func VerifyEvent(header http.Header, body []byte, secrets []string, tolerance time.Duration, now time.Time) (*Event, error) {
	verified, err := Verify(header, body, secrets, tolerance, now)
	if err != nil {
		return nil, err
	}
	event, err := parseEnvelope(body, verified.DeliveryID)
	if err != nil {
		return nil, err
	}
	if attempt, err := strconv.Atoi(header.Get(AttemptHeader)); err == nil && attempt > 0 {
		event.Attempt = attempt
	}
	return event, nil
}

// VerifyStandardWebhook verifies a standard-webhooks-scheme event request and reads its
// envelope; refusals as VerifyEvent's. secrets are the "whsec_" + base64 secrets you hold,
// current first: while a secret is rolled (docs/webhooks.md §7) the request carries two
// space-separated signatures ("v1,<old> v1,<new>"), and any secret matching any signature
// verifies.
func VerifyStandardWebhook(header http.Header, body []byte, secrets []string, tolerance time.Duration, now time.Time) (*Event, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("vizochok: at least one secret is needed")
	}
	keys := make([][]byte, len(secrets))
	for i, secret := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if !strings.HasPrefix(secret, "whsec_") || err != nil || len(key) == 0 {
			return nil, fmt.Errorf("vizochok: secret #%d must be whsec_ followed by base64", i)
		}
		keys[i] = key
	}
	id, timestamp, signatures := header.Get(WebhookIDHeader), header.Get(WebhookTimestampHeader), header.Get(WebhookSignatureHeader)
	if id == "" || timestamp == "" || signatures == "" {
		return nil, &Error{CodeMissingHeader, "missing a webhook-id, -timestamp or -signature header"}
	}
	if !timestampForm.MatchString(timestamp) {
		return nil, &Error{CodeMalformedHeader, WebhookTimestampHeader + " must be whole seconds"}
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return nil, &Error{CodeMalformedHeader, WebhookTimestampHeader + " is out of range"}
	}
	skew := now.Sub(time.Unix(ts, 0))
	if skew > tolerance {
		return nil, &Error{CodeTimestampExpired, fmt.Sprintf("timestamp is %.0f s old", skew.Seconds())}
	}
	if -skew > tolerance {
		return nil, &Error{CodeTimestampInFuture, fmt.Sprintf("timestamp is %.0f s ahead", -skew.Seconds())}
	}
	var given [][]byte
	// Several space-separated "v1,<base64>" values may come (during a secret rotation).
	for _, entry := range strings.Split(signatures, " ") {
		version, value, found := strings.Cut(entry, ",")
		if !found || version != "v1" {
			continue
		}
		if decoded, err := base64.StdEncoding.DecodeString(value); err == nil {
			given = append(given, decoded)
		}
	}
	// Every secret is checked against every signature, so timing does not tell which matched.
	matched := false
	for _, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + timestamp + "."))
		mac.Write(body)
		expected := mac.Sum(nil)
		for _, signature := range given {
			if hmac.Equal(signature, expected) {
				matched = true
			}
		}
	}
	if !matched {
		return nil, &Error{CodeSignatureMismatch, "no webhook-signature matches the raw body"}
	}
	return parseEnvelope(body, id)
}
