// Package vizochok checks that a webhook request came from VIZOCHOK (docs/webhooks.md §2).
//
// X-VIZOCHOK-Signature is "sha256=" + lowercase hex of HMAC-SHA256 with the secret's UTF-8
// bytes as key, over "<timestamp>." + the raw body bytes; X-VIZOCHOK-Timestamp (Unix
// seconds) must be within the tolerance (300 s) of the receiver's clock.
//
// Read the body once with io.ReadAll and pass those bytes; never re-encode parsed JSON.
package vizochok

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// Header names, as the dispatcher sends them.
const (
	SignatureHeader = "X-VIZOCHOK-Signature"
	TimestampHeader = "X-VIZOCHOK-Timestamp"
	DeliveryHeader  = "X-VIZOCHOK-Delivery"
)

// DefaultTolerance is the contract's window around the receiver's clock.
const DefaultTolerance = 300 * time.Second

// Stable refusal codes, the same as the Python kit's 401 bodies.
const (
	CodeMissingHeader     = "missing_header"
	CodeMalformedHeader   = "malformed_header"
	CodeTimestampExpired  = "timestamp_expired"
	CodeTimestampInFuture = "timestamp_in_future"
	CodeSignatureMismatch = "signature_mismatch"
)

// Error is a refusal: answer 401 and do not act on the request.  It never holds a secret.
type Error struct {
	Code   string
	Detail string
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

// Verified is what a verified request proved.
type Verified struct {
	Timestamp   int64
	SecretIndex int    // 0: the first (current) secret; higher: an older one is still in use
	DeliveryID  string // not covered by the signature
}

var (
	timestampForm = regexp.MustCompile(`^(0|[1-9][0-9]{0,14})$`)
	signatureForm = regexp.MustCompile(`^sha256=[0-9a-f]{64}$`)
)

// Verify checks one request against secrets (current first, so a secret can be rolled).
func Verify(header http.Header, body []byte, secrets []string, tolerance time.Duration, now time.Time) (*Verified, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("vizochok: at least one secret is needed")
	}
	timestamps := header.Values(TimestampHeader)
	signatures := header.Values(SignatureHeader)
	if len(timestamps) == 0 {
		return nil, &Error{CodeMissingHeader, "missing header " + TimestampHeader}
	}
	if len(signatures) == 0 {
		return nil, &Error{CodeMissingHeader, "missing header " + SignatureHeader}
	}
	if len(timestamps) > 1 || len(signatures) > 1 {
		return nil, &Error{CodeMalformedHeader, "a signing header was sent more than once"}
	}
	timestamp, signature := timestamps[0], signatures[0]
	// Canonical digits only: the signer MACs the decimal string, so "+5" or "05" cannot match.
	if !timestampForm.MatchString(timestamp) {
		return nil, &Error{CodeMalformedHeader, TimestampHeader + " must be whole seconds"}
	}
	if !signatureForm.MatchString(signature) {
		return nil, &Error{CodeMalformedHeader, SignatureHeader + " must be 'sha256=' and 64 lowercase hex digits"}
	}

	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return nil, &Error{CodeMalformedHeader, TimestampHeader + " is out of range"}
	}
	skew := now.Sub(time.Unix(ts, 0))
	if skew > tolerance {
		return nil, &Error{CodeTimestampExpired, fmt.Sprintf("timestamp is %.0f s old", skew.Seconds())}
	}
	if -skew > tolerance {
		return nil, &Error{CodeTimestampInFuture, fmt.Sprintf("timestamp is %.0f s ahead", -skew.Seconds())}
	}

	given, _ := hex.DecodeString(signature[len("sha256="):]) // the form check proved it is hex
	matched := -1
	// Every secret is checked, so timing does not tell which one matched.
	for index, secret := range secrets {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(timestamp + "."))
		mac.Write(body)
		if hmac.Equal(mac.Sum(nil), given) && matched == -1 {
			matched = index
		}
	}
	if matched == -1 {
		return nil, &Error{CodeSignatureMismatch, fmt.Sprintf("signature does not match the raw body (checked against %d secret(s))", len(secrets))}
	}
	return &Verified{Timestamp: ts, SecretIndex: matched, DeliveryID: header.Get(DeliveryHeader)}, nil
}
