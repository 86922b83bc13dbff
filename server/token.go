package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/stevedore-oci/stevedore/core"
)

// tokenService is the service name in challenges and tokens.
const tokenService = "stevedore"

// tokenIssuer signs and verifies HS256 JWTs carrying docker-style access
// claims. The key never leaves the process.
type tokenIssuer struct {
	key []byte
	ttl time.Duration
}

func newTokenIssuer(key []byte, ttl time.Duration) (*tokenIssuer, error) {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("token key must be at least 16 bytes: %w", core.ErrInvalid)
	}
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	return &tokenIssuer{key: key, ttl: ttl}, nil
}

// access is one granted scope.
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	Expires   int64    `json:"exp"`
	NotBefore int64    `json:"nbf"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	Access    []access `json:"access"`
}

func (c *claims) grants(repo string, act Action) bool {
	for _, a := range c.Access {
		if a.Type == "repository" && a.Name == repo && (slices.Contains(a.Actions, string(act)) || slices.Contains(a.Actions, "*")) {
			return true
		}
	}
	return false
}

var b64 = base64.RawURLEncoding

func (t *tokenIssuer) sign(c claims) string {
	hdr := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, _ := json.Marshal(c)
	msg := hdr + "." + b64.EncodeToString(body)
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(msg))
	return msg + "." + b64.EncodeToString(m.Sum(nil))
}

func (t *tokenIssuer) verify(tok string) (*claims, error) {
	bad := fmt.Errorf("invalid or expired token: %w", core.ErrUnauthorized)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, bad
	}
	hdr, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, bad
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdr, &h) != nil || h.Alg != "HS256" {
		return nil, bad
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, bad
	}
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !constantTimeEq(sig, m.Sum(nil)) {
		return nil, bad
	}
	body, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, bad
	}
	var c claims
	if json.Unmarshal(body, &c) != nil {
		return nil, bad
	}
	now := time.Now().Unix()
	if now >= c.Expires || now+5 < c.NotBefore || c.Audience != tokenService {
		return nil, bad
	}
	return &c, nil
}

// serveToken is the docker-style token endpoint: credentials (basic auth,
// or none for anonymous) and requested scopes in, a signed token granting
// the allowed subset out.
func (a *authenticator) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeError(w, r, newErr(http.StatusMethodNotAllowed, codeUnsupported, fmt.Errorf("token endpoint takes GET")))
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, r, newErr(http.StatusBadRequest, codeUnsupported, err))
		return
	}
	id := Identity{Anonymous: true}
	if gt := r.PostForm.Get("grant_type"); r.Method == http.MethodPost && gt != "" {
		// The OAuth2 form of the token request (docker's token spec,
		// "oauth.md"), which containerd, nerdctl and buildkit send
		// whenever they hold credentials: the user and password are in
		// the form, not in an Authorization header.
		if gt != "password" {
			// No refresh tokens are issued, so none can come back. 400
			// (as ACR answers) makes containerd retry with GET.
			writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported: use password, or GET with basic auth", gt))
			return
		}
		user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
		if user == "" || a.users == nil || !a.verifyPassword(user, pass) {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_grant", "invalid user name or password")
			return
		}
		id = Identity{User: user}
	} else if r.Header.Get("Authorization") != "" {
		user, pass, ok := r.BasicAuth()
		if !ok || a.users == nil || !a.verifyPassword(user, pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="stevedore"`)
			writeError(w, r, newErr(http.StatusUnauthorized, codeUnauthorized, fmt.Errorf("invalid user name or password")))
			return
		}
		id = Identity{User: user}
	}
	var granted []access
	for _, sc := range r.Form["scope"] {
		for _, one := range strings.Fields(sc) {
			parts := strings.Split(one, ":")
			if len(parts) != 3 || parts[0] != "repository" {
				continue // registry:catalog:* and unknown types grant nothing extra
			}
			name := parts[1]
			var acts []string
			for _, want := range strings.Split(parts[2], ",") {
				act := Action(want)
				if want == "*" {
					for _, x := range []Action{ActionPull, ActionPush, ActionDelete} {
						if a.grant(r, id, name, x) {
							acts = append(acts, string(x))
						}
					}
					continue
				}
				if a.grant(r, id, name, act) {
					acts = append(acts, want)
				}
			}
			granted = append(granted, access{Type: "repository", Name: name, Actions: acts})
		}
	}
	now := time.Now()
	c := claims{Issuer: tokenService, Subject: id.User, Audience: tokenService, IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(a.tokens.ttl).Unix(), ID: randomID(), Access: granted}
	tok := a.tokens.sign(c)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": tok, "access_token": tok, "expires_in": int(a.tokens.ttl.Seconds()), "issued_at": now.UTC().Format(time.RFC3339),
	})
}

// writeOAuthError answers an OAuth2 token request with RFC 6749's error body.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (a *authenticator) grant(r *http.Request, id Identity, repo string, act Action) bool {
	if !a.allowed(id, repo, act) {
		return false
	}
	return a.hook == nil || a.hook(r, id, repo, act) == nil
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return b64.EncodeToString(b)
}
