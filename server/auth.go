package server

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/stevedore-oci/stevedore/core"
)

// Action is what a request does to a repository.
type Action string

// Actions a policy grants.
const (
	ActionPull   Action = "pull"
	ActionPush   Action = "push"
	ActionDelete Action = "delete"
)

// Identity is who made a request.
type Identity struct {
	// User is the authenticated user name; "" when Anonymous.
	User      string
	Anonymous bool
}

// AuthorizeFunc is the embedder's hook: it is called for every request the
// built-in rules allowed, with the repository ("" for /v2/ and _catalog)
// and the action, and refuses it by returning an error (wrap
// core.ErrDenied for 403, core.ErrUnauthorized for a 401 challenge).
type AuthorizeFunc func(r *http.Request, id Identity, repository string, action Action) error

// authenticator holds the configured credentials and rules.
type authenticator struct {
	users     map[string][]byte // user -> bcrypt hash
	tokens    *tokenIssuer
	policy    *Policy
	anonWrite bool
	hook      AuthorizeFunc

	okMu sync.Mutex
	ok   map[[32]byte]bool // sha256(user\x00pass) of verified pairs: bcrypt is slow
}

func newAuthenticator(o Options) (*authenticator, error) {
	a := &authenticator{anonWrite: o.AnonymousWrite, hook: o.Authorize, ok: map[[32]byte]bool{}}
	if o.Policy != nil {
		p := &Policy{Rules: append([]Rule(nil), o.Policy.Rules...)}
		if err := p.compile(); err != nil {
			return nil, err
		}
		a.policy = p
	}
	if o.HtpasswdFile != "" {
		u, err := loadHtpasswd(o.HtpasswdFile)
		if err != nil {
			return nil, err
		}
		a.users = u
	}
	if a.policy == nil && o.PolicyFile != "" {
		p, err := LoadPolicy(o.PolicyFile)
		if err != nil {
			return nil, err
		}
		a.policy = p
	}
	if o.Token {
		if a.users == nil && a.hook == nil {
			return nil, fmt.Errorf("token endpoint needs an htpasswd file or an Authorize hook to authenticate users: %w", core.ErrInvalid)
		}
		t, err := newTokenIssuer(o.TokenKey, o.TokenTTL)
		if err != nil {
			return nil, err
		}
		a.tokens = t
	}
	return a, nil
}

func loadHtpasswd(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	defer f.Close()
	users := map[string][]byte{}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		user, hash, ok := strings.Cut(l, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("htpasswd %s line %d: want user:hash: %w", path, line, core.ErrInvalid)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("htpasswd %s line %d: user %s: only bcrypt hashes are supported (htpasswd -B): %w", path, line, user, core.ErrUnsupported)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	return users, nil
}

// open reports whether no access control is configured beyond the
// anonymous-write switch (pulls are open to everyone).
func (a *authenticator) open() bool {
	return a.users == nil && a.policy == nil && a.hook == nil
}

// verifyPassword checks a user's password against htpasswd, remembering
// pairs that verified so that bcrypt runs once per pair, not per request.
func (a *authenticator) verifyPassword(user, pass string) bool {
	hash, ok := a.users[user]
	if !ok {
		return false
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	a.okMu.Lock()
	hit := a.ok[key]
	a.okMu.Unlock()
	if hit {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false
	}
	a.okMu.Lock()
	if len(a.ok) > 4096 {
		a.ok = map[[32]byte]bool{}
	}
	a.ok[key] = true
	a.okMu.Unlock()
	return true
}

// identify reads the request's credentials. A bearer token also returns its
// grants.
func (a *authenticator) identify(r *http.Request) (Identity, *claims, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Identity{Anonymous: true}, nil, nil
	}
	scheme, cred, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "basic":
		user, pass, ok := r.BasicAuth()
		if ok && user == "" && pass == "" {
			// containers/image answers a Basic challenge with empty
			// credentials when it has none: anonymous.
			return Identity{Anonymous: true}, nil, nil
		}
		if !ok || a.users == nil || !a.verifyPassword(user, pass) {
			return Identity{}, nil, fmt.Errorf("invalid user name or password: %w", core.ErrUnauthorized)
		}
		return Identity{User: user}, nil, nil
	case "bearer":
		if a.tokens == nil {
			return Identity{}, nil, fmt.Errorf("bearer tokens are not enabled on this registry: %w", core.ErrUnauthorized)
		}
		c, err := a.tokens.verify(strings.TrimSpace(cred))
		if err != nil {
			return Identity{}, nil, err
		}
		if c.Subject == "" {
			return Identity{Anonymous: true}, c, nil
		}
		return Identity{User: c.Subject}, c, nil
	}
	return Identity{}, nil, fmt.Errorf("unsupported authorization scheme %q: %w", scheme, core.ErrUnauthorized)
}

// allowed applies the policy (or the defaults) to one action.
func (a *authenticator) allowed(id Identity, repo string, act Action) bool {
	if a.policy != nil {
		return a.policy.Allows(id, repo, act)
	}
	if !id.Anonymous {
		return true
	}
	if a.users != nil {
		return false // htpasswd without a policy: log in for everything
	}
	return act == ActionPull || a.anonWrite
}

// check authenticates and authorizes a request.
func (a *authenticator) check(r *http.Request, rt route, act Action) (Identity, error) {
	id, c, err := a.identify(r)
	if err != nil {
		return id, err
	}
	repo := rt.name
	if rt.kind == "ping" || rt.kind == "catalog" {
		repo = ""
		// /v2/ tells clients whether to log in: with users configured it
		// always challenges an anonymous request, even when anonymous may
		// pull somewhere (containers/image sends the credentials it has
		// only after a challenge; a client without any goes on
		// anonymously). The catalog answers anonymous with what it may
		// see.
		anonymousCatalog := rt.kind == "catalog" && a.policy != nil && a.policy.anonymousAny()
		if id.Anonymous && c == nil && (a.users != nil || a.tokens != nil) && !anonymousCatalog {
			return id, fmt.Errorf("authentication required: %w", core.ErrUnauthorized)
		}
	} else {
		if c != nil && !c.grants(repo, act) {
			return id, fmt.Errorf("token does not grant %s on %s: %w", act, repo, core.ErrUnauthorized)
		}
		if c == nil && !a.allowed(id, repo, act) {
			if id.Anonymous {
				return id, fmt.Errorf("%s on %s needs authentication: %w", act, repo, core.ErrUnauthorized)
			}
			return id, fmt.Errorf("user %s may not %s %s: %w", id.User, act, repo, core.ErrDenied)
		}
	}
	if a.hook != nil {
		if err := a.hook(r, id, repo, act); err != nil {
			return id, err
		}
	}
	return id, nil
}

// check2 authorizes an extra repository within an authenticated request
// (the source of a mount, catalog entries).
func (a *authenticator) check2(r *http.Request, id Identity, repo string, act Action) error {
	if !a.allowed(id, repo, act) {
		return fmt.Errorf("%s on %s: %w", act, repo, core.ErrDenied)
	}
	if a.hook != nil {
		return a.hook(r, id, repo, act)
	}
	return nil
}

// challenge answers a refused request: 401 with a WWW-Authenticate header
// the client can act on, or 403.
func (a *authenticator) challenge(w http.ResponseWriter, r *http.Request, rt route, act Action, err error) {
	if !isUnauthorized(err) {
		writeError(w, r, newErr(http.StatusForbidden, codeDenied, err))
		return
	}
	if a.users == nil && a.tokens == nil && a.hook == nil {
		// Nobody can log in: credentials would not help.
		writeError(w, r, newErr(http.StatusForbidden, codeDenied, fmt.Errorf("%v (anonymous writes are disabled on this address; start the server with --allow-anonymous-write or configure --htpasswd)", err)))
		return
	}
	if a.tokens != nil {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		v := fmt.Sprintf(`Bearer realm="%s://%s/token",service="%s"`, scheme, r.Host, tokenService)
		if rt.name != "" {
			acts := "pull"
			switch act {
			case ActionPush:
				acts = "pull,push"
			case ActionDelete:
				acts = "delete"
			}
			v += fmt.Sprintf(`,scope="repository:%s:%s"`, rt.name, acts)
		} else if rt.kind == "catalog" {
			v += `,scope="registry:catalog:*"`
		}
		w.Header().Set("WWW-Authenticate", v)
	} else {
		w.Header().Set("WWW-Authenticate", `Basic realm="stevedore"`)
	}
	writeError(w, r, newErr(http.StatusUnauthorized, codeUnauthorized, err))
}

func isUnauthorized(err error) bool { return errors.Is(err, core.ErrUnauthorized) }

// constantTimeEq compares secrets.
func constantTimeEq(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
