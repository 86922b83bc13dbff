package ref

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/grammar"
)

// Built-in transport names.
const (
	Docker        = "docker"
	OCI           = "oci"
	OCIArchive    = "oci-archive"
	DockerArchive = "docker-archive"
	Dir           = "dir"
	Static        = "static"
)

// Builtin lists the transports whose syntax this package knows.
var Builtin = []string{Docker, OCI, OCIArchive, DockerArchive, Dir, Static}

// Endpoint is a parsed transport endpoint.
type Endpoint struct {
	// Transport is the name before the first ':' ("docker" for docker://).
	Transport string
	// Location is what the transport's plugin opens: a path, or for docker
	// a normalised "host/repository" (docker.io/library/alpine). For static
	// it is "PATH" or "PATH:NAME".
	Location string
	// Ref addresses one image in the location: a tag, a digest, a
	// transport-specific selector ("name:tag" or "@N" for docker-archive),
	// or "" for the location's default.
	Ref string
	// TagWithDigest is the tag of a docker reference naming both a tag and
	// a digest (NAME:TAG@DIGEST), whose Ref is the digest: what a source
	// reads, as docker and crane do. Writing to or deleting such a
	// reference is refused (the host checks it with Unambiguous) rather
	// than the tag dropped.
	TagWithDigest string
}

// Unambiguous returns an error for a reference that names both a tag and a
// digest, for the verbs (copy to, delete) where one of them would be
// ignored; what says which ("destination", "delete").
func (e Endpoint) Unambiguous(what string) error {
	if e.TagWithDigest == "" {
		return nil
	}
	return fmt.Errorf("%s %s names both tag %q and a digest: name one (skopeo refuses it too): %w", what, e, e.TagWithDigest, core.ErrInvalid)
}

// String formats the endpoint back into the syntax Parse accepts.
func (e Endpoint) String() string {
	switch {
	case e.Transport == Docker:
		if e.Ref == "" {
			return "docker://" + e.Location
		}
		if IsDigest(e.Ref) && e.TagWithDigest != "" {
			return "docker://" + e.Location + ":" + e.TagWithDigest + "@" + e.Ref
		}
		if IsDigest(e.Ref) {
			return "docker://" + e.Location + "@" + e.Ref
		}
		return "docker://" + e.Location + ":" + e.Ref
	case e.Transport == Dir || e.Ref == "":
		return e.Transport + ":" + e.Location
	case e.Transport == Static && IsDigest(e.Ref):
		return e.Transport + ":" + e.Location + "@" + e.Ref
	}
	return e.Transport + ":" + e.Location + ":" + e.Ref
}

// WithRef returns a copy of e addressing another image in the same location.
func (e Endpoint) WithRef(r string) Endpoint {
	e.Ref, e.TagWithDigest = r, ""
	return e
}

// Under is the endpoint of repository rel ("team/app") under e, a prefix: a
// path below a layout tree's or a registry's, or for a static tree a
// repository name below the one e names (static:PATH:NAME/rel).
func (e Endpoint) Under(rel string) Endpoint {
	rel = strings.Trim(rel, "/")
	if rel == "" {
		return e
	}
	if e.Transport == Static {
		path, name, _ := strings.Cut(e.Location, ":")
		if name = strings.TrimRight(name, "/"); name != "" {
			rel = name + "/" + rel
		}
		e.Location = path + ":" + rel
		return e
	}
	e.Location = strings.TrimRight(e.Location, "/") + "/" + rel
	return e
}

// IsDigest reports whether s is a well-formed digest ("sha256:<hex>").
func IsDigest(s string) bool {
	_, err := digest.Parse(s)
	return err == nil
}

// ErrUnknownTransport is wrapped by Parse for a transport it does not know.
var ErrUnknownTransport = fmt.Errorf("unknown transport: %w", core.ErrInvalid)

func invalid(input, why string) error {
	return fmt.Errorf("invalid endpoint %q: %s: %w", input, why, core.ErrInvalid)
}

// Parse parses an endpoint of one of the built-in transports. An unknown
// transport gives an error wrapping ErrUnknownTransport; callers that know
// more transports (plugins) can then fall back to ParseGeneric.
func Parse(s string) (Endpoint, error) {
	transport, rest, ok := strings.Cut(s, ":")
	if !ok || transport == "" {
		return Endpoint{}, invalid(s, "want TRANSPORT:LOCATION, e.g. docker://alpine or oci:DIR:TAG")
	}
	switch transport {
	case Docker:
		return parseDocker(s, rest)
	case OCI, OCIArchive:
		return parsePathRef(s, transport, rest)
	case DockerArchive:
		return parseDockerArchive(s, rest)
	case Dir:
		if rest == "" {
			return Endpoint{}, invalid(s, "dir: needs a path")
		}
		return Endpoint{Transport: Dir, Location: rest}, nil
	case Static:
		return parseStatic(s, rest)
	}
	return Endpoint{}, fmt.Errorf("endpoint %q: transport %q (known: %s): %w", s, transport, strings.Join(Builtin, ", "), ErrUnknownTransport)
}

// ParseGeneric parses TRANSPORT:LOCATION[:REF] for a transport this package
// does not know (a third-party plugin), splitting location and ref at the
// first ':' like oci: does.
func ParseGeneric(s string) (Endpoint, error) {
	transport, rest, ok := strings.Cut(s, ":")
	if !ok || !validTransportName(transport) {
		return Endpoint{}, invalid(s, "want TRANSPORT:LOCATION[:REF]")
	}
	return parsePathRef(s, transport, rest)
}

func validTransportName(s string) bool {
	if s == "" || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !grammar.IsLowerAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// ValidTransportName reports whether s can name a transport.
func ValidTransportName(s string) bool { return validTransportName(s) }

func parseDocker(input, rest string) (Endpoint, error) {
	if !strings.HasPrefix(rest, "//") {
		return Endpoint{}, invalid(input, "docker endpoints are docker://NAME[:TAG|@DIGEST]")
	}
	name := strings.TrimPrefix(rest, "//")
	if name == "" {
		return Endpoint{}, invalid(input, "missing image name after docker://")
	}
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return Endpoint{}, invalid(input, explainDocker(name, err))
	}
	if err := checkPort(reference.Domain(named)); err != nil {
		return Endpoint{}, invalid(input, err.Error())
	}
	ep := Endpoint{Transport: Docker, Location: named.Name()}
	switch r := named.(type) {
	case reference.Digested:
		// name:tag@digest: the digest is what is pulled, as crane does.
		ep.Ref = r.Digest().String()
		if t, ok := named.(reference.Tagged); ok {
			ep.TagWithDigest = t.Tag()
		}
	case reference.Tagged:
		ep.Ref = r.Tag()
	default:
		ep.Ref = "latest"
	}
	return ep, nil
}

// explainDocker says which part of a docker reference is malformed, where
// the reference package says only "invalid reference format".
func explainDocker(name string, err error) string {
	if !errors.Is(err, reference.ErrReferenceInvalidFormat) {
		return err.Error()
	}
	rest := name
	if i := strings.Index(rest, "@"); i >= 0 {
		d := rest[i+1:]
		rest = rest[:i]
		if _, derr := digest.Parse(d); derr != nil {
			return fmt.Sprintf("digest %q: %v (want ALGORITHM:HEX, e.g. sha256: and 64 hex digits)", d, derr)
		}
	}
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		tag := rest[i+1:]
		if !ValidTag(tag) {
			return fmt.Sprintf("tag %q: want 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", tag)
		}
		rest = rest[:i]
	}
	path := rest
	if host, p, ok := strings.Cut(rest, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		if _, port, ok := strings.Cut(host, ":"); ok && (port == "" || strings.Trim(port, "0123456789") != "") {
			return fmt.Sprintf("registry %q: the port must be a number", host)
		}
		path = p
	}
	if !ValidRepository(path) {
		return fmt.Sprintf("repository %q: want lowercase letters and digits, separated by '/', '.', '_', '__' or '-'", path)
	}
	return err.Error()
}

// checkPort refuses a registry port no TCP address has (the grammar takes
// any digits; the dial failed later, after blobs were read).
func checkPort(domain string) error {
	i := strings.LastIndex(domain, ":")
	if i < 0 || strings.HasSuffix(domain, "]") {
		return nil
	}
	if n, err := strconv.Atoi(domain[i+1:]); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("registry %q: port %s is not between 1 and 65535", domain, domain[i+1:])
	}
	return nil
}

// DockerNamesImage reports whether s, a docker:// endpoint, names a tag or
// a digest itself (Parse gives a docker endpoint naming none "latest").
func DockerNamesImage(s string) bool {
	named, err := reference.ParseNormalizedNamed(strings.TrimPrefix(s, Docker+"://"))
	if err != nil {
		return false
	}
	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	return tagged || digested
}

// DockerPrefix normalises what names a set of repositories: a registry
// alone ("127.0.0.1:5000", "ghcr.io", "localhost:5000": no slash, and a host
// name with a dot or a port, or localhost, as docker tells registries from
// images) is kept as it is; anything else is a repository name, normalised
// like DockerLocation ("quay.io/acme", "docker.io/library").
func DockerPrefix(name string) (string, error) {
	if strings.Contains(name, "/") {
		// Normalised as the parent of a repository, so that docker.io/acme
		// does not become docker.io/library/acme; a tag or digest cannot
		// parse in front of "/x".
		named, err := reference.ParseNormalizedNamed(name + "/x")
		if err != nil {
			why := err.Error()
			if strings.Contains(name, "@") || strings.LastIndex(name, ":") > strings.LastIndex(name, "/") {
				why = "a prefix names repositories: drop the tag or digest"
			}
			return "", fmt.Errorf("repository prefix %q: %s: %w", name, why, core.ErrInvalid)
		}
		return strings.TrimSuffix(named.Name(), "/x"), nil
	}
	named, err := reference.ParseNormalizedNamed(name + "/x/y")
	if err != nil || !strings.EqualFold(reference.Domain(named), name) {
		return "", fmt.Errorf("%q names neither a registry (a host name with a dot or a port, or localhost) nor a repository under one: %w", name, core.ErrInvalid)
	}
	return name, nil
}

// DockerLocation normalises a repository name (without tag) the way
// docker:// endpoints are normalised.
func DockerLocation(name string) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("repository %q: %v: %w", name, err, core.ErrInvalid)
	}
	return named.Name(), nil
}

func parsePathRef(input, transport, rest string) (Endpoint, error) {
	path, r, _ := strings.Cut(rest, ":")
	if path == "" {
		return Endpoint{}, invalid(input, transport+": needs a path")
	}
	if strings.ContainsAny(r, "\x00\n") {
		return Endpoint{}, invalid(input, "reference contains a control character")
	}
	if (transport == OCI || transport == OCIArchive) && r != "" && !looksLikeDigest(r) {
		// Refused here, as skopeo does, rather than when the layout
		// records it, after every blob was written.
		if err := CheckLayoutName(r); err != nil {
			// err wraps core.ErrInvalid already ("...: invalid").
			return Endpoint{}, fmt.Errorf("invalid endpoint %q: %w", input, err)
		}
	}
	return Endpoint{Transport: transport, Location: path, Ref: r}, nil
}

// CheckLayoutName checks an image name of an OCI layout's index.json
// (grammar.LayoutName).
func CheckLayoutName(name string) error { return grammar.LayoutName(name) }

// ValidTag reports whether s matches [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
// (grammar.Tag).
func ValidTag(s string) bool { return grammar.Tag(s) }

// ValidRepository reports whether s is a repository name of the
// distribution spec (grammar.Repository).
func ValidRepository(s string) bool { return grammar.Repository(s) }

// looksLikeDigest says whether r starts with a digest algorithm's name
// and a colon (a layout resolves it as a digest, never as a name).
func looksLikeDigest(r string) bool {
	alg, _, ok := strings.Cut(r, ":")
	return ok && digest.Algorithm(alg).Available()
}

func parseDockerArchive(input, rest string) (Endpoint, error) {
	path, r, _ := strings.Cut(rest, ":")
	if path == "" {
		return Endpoint{}, invalid(input, "docker-archive: needs a path")
	}
	ep := Endpoint{Transport: DockerArchive, Location: path}
	switch {
	case r == "":
	case strings.HasPrefix(r, "@"):
		n := r[1:]
		if n == "" || strings.Trim(n, "0123456789") != "" {
			return Endpoint{}, invalid(input, "docker-archive index must be @N with N a number")
		}
		ep.Ref = r
	default:
		named, err := reference.ParseNormalizedNamed(r)
		if err != nil {
			return Endpoint{}, invalid(input, err.Error())
		}
		if _, ok := named.(reference.Digested); ok {
			return Endpoint{}, invalid(input, "docker-archive references take NAME:TAG, not a digest")
		}
		ep.Ref = reference.FamiliarString(reference.TagNameOnly(named))
	}
	return ep, nil
}

func parseStatic(input, rest string) (Endpoint, error) {
	path, nameRef, _ := strings.Cut(rest, ":")
	if path == "" {
		return Endpoint{}, invalid(input, "static: needs a path")
	}
	if nameRef == "" {
		return Endpoint{Transport: Static, Location: path}, nil
	}
	name, r := nameRef, "latest"
	if i := strings.Index(nameRef, "@"); i >= 0 {
		name, r = nameRef[:i], nameRef[i+1:]
		if !IsDigest(r) {
			return Endpoint{}, invalid(input, "malformed digest "+r)
		}
	} else if i := strings.LastIndex(nameRef, ":"); i >= 0 {
		name, r = nameRef[:i], nameRef[i+1:]
		if !ValidTag(r) {
			return Endpoint{}, invalid(input, "malformed tag "+r)
		}
	}
	if !ValidRepository(name) {
		return Endpoint{}, invalid(input, "malformed repository name "+name)
	}
	return Endpoint{Transport: Static, Location: path + ":" + name, Ref: r}, nil
}
