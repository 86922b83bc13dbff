package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/stevedore-oci/stevedore/core"
)

// Credential is a user name and password, or an identity token (OAuth2
// refresh token) from a registry's login.
type Credential struct {
	Username      string
	Password      string
	IdentityToken string
}

// DefaultAuthFile is where login writes when no file is named:
// $REGISTRY_AUTH_FILE, else ${XDG_RUNTIME_DIR}/containers/auth.json (what
// podman and skopeo use), else ~/.config/containers/auth.json.
func DefaultAuthFile() string {
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		return f
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "containers", "auth.json")
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "containers", "auth.json")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config", "containers", "auth.json")
}

// hubKeys are the keys tools have used for Docker Hub; "docker.io" is the
// one written.
var hubKeys = []string{"docker.io", "https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1", "https://registry-1.docker.io"}

// NormalizeRegistry turns what a user types after `login` into the key of
// the auth file and the host to contact: "docker.io" (and its aliases) is
// stored as docker.io and reached at registry-1.docker.io; a scheme and a
// path are dropped ("https://r.example.com/v2/" is r.example.com), except a
// repository namespace, which containers' auth.json allows
// ("quay.io/team").
func NormalizeRegistry(s string) (key, host string, err error) {
	// skopeo's transport prefix is not part of the name.
	s = strings.TrimPrefix(strings.TrimSpace(s), "docker://")
	if s == "" {
		return "", "", fmt.Errorf("registry name is empty: %w", core.ErrInvalid)
	}
	for _, k := range hubKeys {
		if s == k {
			return "docker.io", "registry-1.docker.io", nil
		}
	}
	hadScheme := strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	hostPart, path, _ := strings.Cut(s, "/")
	path = strings.Trim(path, "/")
	if hadScheme || path == "v1" || path == "v2" || strings.HasPrefix(path, "v1/") || strings.HasPrefix(path, "v2/") {
		path = ""
	}
	if hostPart == "" || strings.ContainsAny(hostPart, " \t@") {
		return "", "", fmt.Errorf("registry %q is not a host[:port]: %w", s, core.ErrInvalid)
	}
	hostPart = strings.ToLower(hostPart)
	host = hostPart
	if host == "docker.io" || host == "index.docker.io" {
		hostPart, host = "docker.io", "registry-1.docker.io"
	}
	key = hostPart
	if path != "" {
		key += "/" + path
	}
	return key, host, nil
}

// file is an auth file kept as raw JSON so that fields we do not know
// survive a rewrite.
type file struct {
	path  string
	raw   map[string]json.RawMessage
	auths map[string]json.RawMessage
	store string            // credsStore
	helps map[string]string // credHelpers
}

func readFile(path string) (*file, error) {
	f := &file{path: path, raw: map[string]json.RawMessage{}, auths: map[string]json.RawMessage{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read auth file %s: %w", path, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return f, nil
	}
	if err := json.Unmarshal(b, &f.raw); err != nil {
		return nil, fmt.Errorf("auth file %s is not a JSON object: %v: %w", path, err, core.ErrInvalid)
	}
	if a, ok := f.raw["auths"]; ok {
		if err := json.Unmarshal(a, &f.auths); err != nil || f.auths == nil {
			return nil, fmt.Errorf("auth file %s: auths is not an object: %w", path, core.ErrInvalid)
		}
	}
	if s, ok := f.raw["credsStore"]; ok {
		json.Unmarshal(s, &f.store)
	}
	if h, ok := f.raw["credHelpers"]; ok {
		json.Unmarshal(h, &f.helps)
	}
	return f, nil
}

// helper returns the credential helper that holds key's credentials, if
// the file delegates to one.
func (f *file) helper(key string) string {
	if h := f.helps[key]; h != "" {
		return h
	}
	return f.store
}

// write saves the file atomically with mode 0600 in a 0700 directory.
func (f *file) write() error {
	if len(f.auths) > 0 || f.raw["auths"] != nil {
		b, err := json.Marshal(f.auths)
		if err != nil {
			return err
		}
		f.raw["auths"] = b
	}
	out, err := json.MarshalIndent(f.raw, "", "\t")
	if err != nil {
		return err
	}
	out = append(out, '\n')
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".auth-*.json")
	if err != nil {
		return fmt.Errorf("write auth file %s: %w", f.path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return fmt.Errorf("write auth file %s: %w", f.path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("write auth file %s: %w", f.path, err)
	}
	return nil
}

func aliases(key string) []string {
	if key == "docker.io" {
		return hubKeys
	}
	return []string{key, "https://" + key, "http://" + key}
}

// Store saves cred for key (see NormalizeRegistry) in the auth file at
// path, or in the credential helper the file names for it. Other entries
// and unknown fields are kept.
func Store(ctx context.Context, path, key string, cred Credential) error {
	f, err := readFile(path)
	if err != nil {
		return err
	}
	if h := f.helper(key); h != "" {
		c := orasauth.Credential{Username: cred.Username, Password: cred.Password, RefreshToken: cred.IdentityToken}
		server := key
		if key == "docker.io" {
			server = "https://index.docker.io/v1/" // the key docker's helpers use
		}
		if err := credentials.NewNativeStore(h).Put(ctx, server, c); err != nil {
			return fmt.Errorf("store credentials for %s with docker-credential-%s: %w", key, h, err)
		}
		// The helper holds the secret; drop any plain-text copy.
		for _, a := range aliases(key) {
			delete(f.auths, a)
		}
		return f.write()
	}
	entry := map[string]string{}
	if cred.Username != "" || cred.Password != "" {
		entry["auth"] = base64.StdEncoding.EncodeToString([]byte(cred.Username + ":" + cred.Password))
	}
	if cred.IdentityToken != "" {
		entry["identitytoken"] = cred.IdentityToken
	}
	b, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	for _, a := range aliases(key) {
		delete(f.auths, a)
	}
	f.auths[key] = b
	return f.write()
}

// Remove deletes the credentials of key from the file at path (and from
// its credential helper). It reports whether there was anything to remove.
func Remove(ctx context.Context, path, key string) (bool, error) {
	f, err := readFile(path)
	if err != nil {
		return false, err
	}
	removed := false
	if h := f.helper(key); h != "" {
		server := key
		if key == "docker.io" {
			server = "https://index.docker.io/v1/"
		}
		store := credentials.NewNativeStore(h)
		if c, err := store.Get(ctx, server); err == nil && c != orasauth.EmptyCredential {
			if err := store.Delete(ctx, server); err != nil {
				return false, fmt.Errorf("erase credentials for %s with docker-credential-%s: %w", key, h, err)
			}
			removed = true
		}
	}
	for _, a := range aliases(key) {
		if _, ok := f.auths[a]; ok {
			delete(f.auths, a)
			removed = true
		}
	}
	if !removed {
		return false, nil
	}
	return true, f.write()
}

// RemoveAll deletes every auths entry of the file at path (helpers are left
// alone) and returns the keys removed.
func RemoveAll(path string) ([]string, error) {
	f, err := readFile(path)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range f.auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return nil, nil
	}
	f.auths = map[string]json.RawMessage{}
	return keys, f.write()
}

// Lookup returns the credentials stored for key in the file at path (via
// its helper when it names one); ok is false when there are none.
func Lookup(ctx context.Context, path, key string) (cred Credential, ok bool, err error) {
	f, err := readFile(path)
	if err != nil {
		return Credential{}, false, err
	}
	if h := f.helper(key); h != "" {
		for _, server := range aliases(key) {
			c, err := credentials.NewNativeStore(h).Get(ctx, server)
			if err != nil {
				return Credential{}, false, fmt.Errorf("read credentials for %s with docker-credential-%s: %w", key, h, err)
			}
			if c != orasauth.EmptyCredential {
				return Credential{Username: c.Username, Password: c.Password, IdentityToken: c.RefreshToken}, true, nil
			}
		}
	}
	for _, a := range aliases(key) {
		raw, found := f.auths[a]
		if !found {
			continue
		}
		var e struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return Credential{}, false, fmt.Errorf("auth file %s, entry %s: %v: %w", path, a, err, core.ErrInvalid)
		}
		c := Credential{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
		if e.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(e.Auth)
			u, p, okCut := strings.Cut(string(dec), ":")
			if err != nil || !okCut {
				return Credential{}, false, fmt.Errorf("auth file %s, entry %s: auth is not base64(user:password): %w", path, a, core.ErrInvalid)
			}
			c.Username, c.Password = u, p
		}
		if c != (Credential{}) {
			return c, true, nil
		}
	}
	return Credential{}, false, nil
}
