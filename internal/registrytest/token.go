package registrytest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	tokenService = "registrytest"
	tokenIssuer  = "registrytest-issuer"
	tokenTTL     = 5 * time.Minute
)

// access is one entry of a token's "access" claim.
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// issuer is the bearer token service: it authenticates the basic
// credentials of a token request and signs a JWT granting the requested
// scopes that Grant allows.
type issuer struct {
	signer keyPair
	users  map[string]string
	grant  func(user, repository string, requested []string) []string

	requests atomic.Int64
	mu       sync.Mutex
	scopes   []string             // scope strings of every token request, in order
	issued   map[string]time.Time // when each token was signed
}

// issuedAt is when tok was signed (the zero time for a token not ours).
func (is *issuer) issuedAt(tok string) time.Time {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.issued[tok]
}

func (is *issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	is.requests.Add(1)
	q := r.URL.Query()
	is.mu.Lock()
	is.scopes = append(is.scopes, strings.Join(q["scope"], " "))
	is.mu.Unlock()

	user := ""
	if u, p, ok := r.BasicAuth(); ok {
		if want, known := is.users[u]; !known || want != p {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}`)
			return
		}
		user = u
	}
	if q.Get("service") != tokenService {
		http.Error(w, `{"errors":[{"code":"DENIED","message":"unknown service"}]}`, http.StatusBadRequest)
		return
	}
	var granted []access
	for _, scope := range q["scope"] {
		for _, s := range strings.Fields(scope) {
			parts := strings.Split(s, ":")
			if s == "registry:catalog:*" && user != "" {
				// The catalog, to any authenticated user.
				granted = append(granted, access{Type: "registry", Name: "catalog", Actions: []string{"*"}})
				continue
			}
			if len(parts) < 3 || parts[0] != "repository" {
				continue
			}
			name := strings.Join(parts[1:len(parts)-1], ":")
			actions := is.grant(user, name, strings.Split(parts[len(parts)-1], ","))
			if len(actions) > 0 {
				granted = append(granted, access{Type: "repository", Name: name, Actions: actions})
			}
		}
	}
	tok, err := is.sign(user, granted)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   int(tokenTTL / time.Second),
		"issued_at":    time.Now().UTC().Format(time.RFC3339),
	})
}

// defaultGrant gives an authenticated user every action asked for and an
// anonymous one nothing.
func defaultGrant(user, _ string, requested []string) []string {
	if user == "" {
		return nil
	}
	return requested
}

// sign makes a compact JWS (ES256) whose header carries the signing
// certificate (x5c); docker-registry verifies it against rootcertbundle.
func (is *issuer) sign(subject string, granted []access) (string, error) {
	if granted == nil {
		granted = []access{}
	}
	now := time.Now()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	header, err := json.Marshal(map[string]any{
		"typ": "JWT",
		"alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(is.signer.der)},
	})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss":    tokenIssuer,
		"sub":    subject,
		"aud":    tokenService,
		"exp":    now.Add(tokenTTL).Unix(),
		"nbf":    now.Add(-time.Second).Unix(),
		"iat":    now.Unix(),
		"jti":    hex.EncodeToString(jti),
		"access": granted,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, is.signer.key, sum[:])
	if err != nil {
		return "", err
	}
	// JWS ES256 signatures are r||s, each left-padded to 32 bytes.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	tok := signing + "." + enc.EncodeToString(sig)
	is.mu.Lock()
	if is.issued == nil {
		is.issued = map[string]time.Time{}
	}
	is.issued[tok] = now
	is.mu.Unlock()
	return tok, nil
}

// fullAccess is a token with every action on every repository named, for
// the harness's own requests (Seed).
func (is *issuer) fullAccess(repositories ...string) (string, error) {
	var granted []access
	for _, r := range repositories {
		granted = append(granted, access{Type: "repository", Name: r, Actions: []string{"pull", "push", "delete"}})
	}
	return is.sign("registrytest-admin", granted)
}
