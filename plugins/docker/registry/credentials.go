package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/stevedore-oci/stevedore/core"
)

// credResolver finds the credentials of one endpoint once, on the first
// challenge, and remembers where they came from.
type credResolver struct {
	name string // registry name as in references: docker.io, 127.0.0.1:5000
	repo string
	opts options
	// helpers is registries.conf's credential-helpers (nil: the auth
	// files alone).
	helpers []string

	once   sync.Once
	cred   auth.Credential
	source string
	err    error
}

// describe names the credentials source for error messages; it never
// includes a secret.
func (c *credResolver) describe() string {
	if c.source == "" {
		return "none resolved"
	}
	return c.source
}

func (c *credResolver) get(ctx context.Context) (auth.Credential, error) {
	c.once.Do(func() { c.cred, c.source, c.err = c.resolve(ctx) })
	return c.cred, c.err
}

func (c *credResolver) resolve(ctx context.Context) (auth.Credential, string, error) {
	switch {
	case c.opts.noCreds:
		return auth.EmptyCredential, "anonymous (no-creds)", nil
	case c.opts.registryToken != "":
		return auth.Credential{AccessToken: c.opts.registryToken}, "registry-token option", nil
	case c.opts.username != "":
		return auth.Credential{Username: c.opts.username, Password: c.opts.password}, "creds option for user " + c.opts.username, nil
	}
	// An authfile named by the caller is what to read; otherwise
	// registries.conf's credential-helpers say in which order to ask the
	// helpers and the auth files ("containers-auth.json"), the files alone
	// by default, as for containers/image.
	helpers := c.helpers
	if len(helpers) == 0 || c.opts.authfile != "" {
		helpers = []string{containersAuthJSON}
	}
	var searched []string
	for _, h := range helpers {
		if h != containersAuthJSON {
			for _, k := range helperKeys(c.name) {
				cred, err := helperGet(ctx, h, k)
				if err != nil {
					return auth.EmptyCredential, "credential helper docker-credential-" + h + " (credential-helpers in registries.conf)", err
				}
				if cred != auth.EmptyCredential {
					return cred, "credential helper docker-credential-" + h + " (credential-helpers in registries.conf)", nil
				}
			}
			searched = append(searched, "docker-credential-"+h)
			continue
		}
		files := AuthFiles(c.opts.authfile)
		for _, f := range files {
			cred, how, err := lookupFile(ctx, f, c.name, c.repo)
			if err != nil {
				return auth.EmptyCredential, "auth file " + f, err
			}
			if how != "" {
				return cred, how, nil
			}
		}
		for _, f := range files {
			if f == c.opts.authfile && !fileExists(f) {
				// Named by --authfile: a misspelt path is the likely cause.
				f += " (which does not exist)"
			}
			searched = append(searched, f)
		}
	}
	return auth.EmptyCredential, fmt.Sprintf("anonymous (no entry for %s in %s)", c.name, strings.Join(searched, ", ")), nil
}

// containersAuthJSON names the auth files in registries.conf's
// credential-helpers.
const containersAuthJSON = "containers-auth.json"

// AuthFiles lists the credential files consulted, in order: only authfile
// when it is set, otherwise the containers and docker defaults.
func AuthFiles(authfile string) []string {
	if authfile != "" {
		return []string{authfile}
	}
	var files []string
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		files = append(files, f)
	} else if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		files = append(files, filepath.Join(d, "containers", "auth.json"))
	}
	home, _ := os.UserHomeDir()
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		files = append(files, filepath.Join(d, "containers", "auth.json"))
	} else if home != "" {
		files = append(files, filepath.Join(home, ".config", "containers", "auth.json"))
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		files = append(files, filepath.Join(d, "config.json"))
	} else if home != "" {
		files = append(files, filepath.Join(home, ".docker", "config.json"))
	}
	return files
}

// authFile is the part of docker's config.json and containers' auth.json
// that holds credentials (both use the same format).
type authFile struct {
	Auths       map[string]authEntry `json:"auths"`
	CredsStore  string               `json:"credsStore"`
	CredHelpers map[string]string    `json:"credHelpers"`
}

type authEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// hubAliases are the keys docker, skopeo and older tools use for Docker Hub.
var hubAliases = []string{"docker.io", "https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1", "https://registry-1.docker.io"}

// registryKeys are the keys under which a registry's entry may be stored.
func registryKeys(name string) []string {
	if name == "docker.io" {
		return hubAliases
	}
	return []string{name, "https://" + name, "http://" + name, "https://" + name + "/v1/", "https://" + name + "/v2/"}
}

// helperKeys are the server addresses asked of a credsStore helper (each
// ask runs a process): the name docker login stores under.
func helperKeys(name string) []string {
	if name == "docker.io" {
		return []string{"https://index.docker.io/v1/", "docker.io"}
	}
	return []string{name}
}

// lookupFile finds the credentials for name/repo in one file. how is "" when
// the file has none (or does not exist).
func lookupFile(ctx context.Context, path, name, repo string) (cred auth.Credential, how string, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return auth.EmptyCredential, "", nil
	}
	if err != nil {
		return auth.EmptyCredential, "", fmt.Errorf("read auth file %s: %w", path, err)
	}
	var f authFile
	if len(strings.TrimSpace(string(b))) > 0 {
		if err := json.Unmarshal(b, &f); err != nil {
			return auth.EmptyCredential, "", fmt.Errorf("auth file %s is not valid JSON: %v: %w", path, err, core.ErrInvalid)
		}
	}
	// A helper named for the registry wins, then the default store.
	for _, k := range registryKeys(name) {
		if h := f.CredHelpers[k]; h != "" {
			cred, err := helperGet(ctx, h, k)
			if err != nil {
				return auth.EmptyCredential, "", err
			}
			if cred != auth.EmptyCredential {
				return cred, fmt.Sprintf("credential helper docker-credential-%s (credHelpers in %s)", h, path), nil
			}
			return auth.EmptyCredential, "", nil
		}
	}
	if f.CredsStore != "" {
		for _, k := range helperKeys(name) {
			cred, err := helperGet(ctx, f.CredsStore, k)
			if err != nil {
				return auth.EmptyCredential, "", err
			}
			if cred != auth.EmptyCredential {
				return cred, fmt.Sprintf("credential helper docker-credential-%s (credsStore in %s)", f.CredsStore, path), nil
			}
		}
	}
	// auths: the most specific repository namespace first (containers
	// auth.json allows "host/namespace" keys), then the registry.
	// Host names are case-insensitive: login stores them in lower case.
	names := []string{name}
	if lower := strings.ToLower(name); lower != name {
		names = append(names, lower)
	}
	keys := []string{}
	for _, name := range names {
		parts := strings.Split(repo, "/")
		for i := len(parts); i >= 1; i-- {
			keys = append(keys, name+"/"+strings.Join(parts[:i], "/"))
		}
		keys = append(keys, registryKeys(name)...)
	}
	for _, k := range keys {
		e, ok := f.Auths[k]
		if !ok {
			continue
		}
		cred, err := e.credential()
		if err != nil {
			return auth.EmptyCredential, "", fmt.Errorf("auth file %s, entry %s: %w", path, k, err)
		}
		if cred == auth.EmptyCredential {
			continue
		}
		return cred, fmt.Sprintf("auth file %s (entry %s)", path, k), nil
	}
	return auth.EmptyCredential, "", nil
}

func (e authEntry) credential() (auth.Credential, error) {
	cred := auth.Credential{Username: e.Username, Password: e.Password, RefreshToken: e.IdentityToken, AccessToken: e.RegistryToken}
	if e.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			return auth.EmptyCredential, fmt.Errorf("auth field is not base64: %w", core.ErrInvalid)
		}
		u, p, ok := strings.Cut(string(raw), ":")
		if !ok {
			return auth.EmptyCredential, fmt.Errorf("auth field is not base64(user:password): %w", core.ErrInvalid)
		}
		cred.Username, cred.Password = u, p
	}
	return cred, nil
}

// helperGet asks docker-credential-NAME for serverAddress's credentials.
func helperGet(ctx context.Context, helper, serverAddress string) (auth.Credential, error) {
	cred, err := credentials.NewNativeStore(helper).Get(ctx, serverAddress)
	if err != nil {
		return auth.EmptyCredential, fmt.Errorf("credential helper docker-credential-%s for %s: %s: %w", helper, serverAddress, oneLine(err.Error()), core.ErrUnauthorized)
	}
	return cred, nil
}
