// Package registry is the docker:// transport: a client of registries that
// speak the Docker Registry HTTP API V2 / OCI distribution-spec (Docker Hub,
// GHCR, ECR, Harbor, distribution, zot, stevedore's own server). The plugin
// binary plugins/docker wraps it with pluginapi.Serve.
//
// An endpoint's Location is a normalised "host/repository"
// (docker.io/library/alpine, 127.0.0.1:5000/a/b); docker.io is reached at
// registry-1.docker.io. Images in it are addressed by a tag or a digest.
// Every endpoint lists, from the registry's catalog, the repositories at
// or under its own (RepositoryLister); a Location that is a registry alone
// ("127.0.0.1:5000", "ghcr.io"), opened for reading, does only that.
//
// # Options
//
// OpenRequest.Options keys (unknown keys are ignored):
//
//	creds           "USER:PASSWORD" for the registry (skopeo --creds)
//	registry-token  a bearer token sent as is (skopeo --registry-token)
//	no-creds        "true": access the registry anonymously
//	authfile        the only auth file to read (skopeo --authfile)
//	tls-verify      "true" (default) or "false": skip certificate checks and
//	                fall back to plain HTTP when the host does not speak TLS
//	cert-dir        directory of CA certificates (*.crt) and client
//	                certificate pairs (*.cert + *.key); without it
//	                /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST
//	                are read
//	user-agent      User-Agent header (default "stevedore")
//	flag-prefix     the prefix of the command-line flags that error hints
//	                name: "src-" gives --src-tls-verify and --src-cert-dir
//	                (default none: --tls-verify, --cert-dir)
//
// Credentials are looked up like skopeo does, first match wins: creds or
// registry-token; the authfile option alone when given; otherwise
// $REGISTRY_AUTH_FILE (or ${XDG_RUNTIME_DIR}/containers/auth.json),
// ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json, and
// $DOCKER_CONFIG/config.json (or ~/.docker/config.json). In each file
// credHelpers, then credsStore (docker-credential-NAME on PATH), then auths
// entries (most specific repository namespace first) are consulted. The
// source used is named in 401/403 errors, never the secret.
//
// # Protocol
//
// oras.land/oras-go/v2 provides the authentication client (basic and bearer
// challenges, a token cache keyed by scope so one token serves every request
// of an endpoint, redirects that never carry Authorization to another
// origin), the retry transport (bounded exponential backoff on 5xx, 429
// with Retry-After up to Plugin.RetryAfterMax, a longer one failing at
// once, 408 and connection resets, applied here to idempotent requests
// only), tag listing with Link pagination, the referrers API with
// its tag-schema fallback, manifest push (which maintains the referrers tag
// index for manifests with a subject on registries without the API) and
// manifest delete. This package writes what oras-go lacks or does
// differently: Resolve by HEAD then GET (ResolveManifest: one GET), manifest
// fetch that checks the bytes
// against the requested digest, blob GET that resumes with Range after a
// broken connection, uploads streamed from the caller's reader (one PUT up
// to Plugin.MonolithicMax, PATCH chunks above it that resume from the
// registry's reported offset by replaying the last Plugin.ReplayWindow
// bytes), cross-repository mount that reports a refused mount instead of
// copying (and keeps the upload the registry opened instead for the blob's
// bytes), tag deletion, credential files and TLS settings.
//
// registries.conf (containers-registries.conf(5), see regconf.go) is read
// once per process: Open rewrites a read endpoint's location, attaches its
// mirrors (Resolve tries them first; reads by digest go to the source that
// resolved, then the others; see mirror.go), refuses blocked pulls and
// turns TLS verification off for insecure registries unless the tls-verify
// option was given; its credential-helpers list orders the credential
// sources (credentials.go).
//
// # Registry behaviours worth knowing
//
// Deleting a tag uses the OCI 1.1 tag DELETE; registries without it
// (distribution 2.x answers 400) get the manifest deleted by digest and the
// repository's other tags that pointed at it put back (scanning at most 500
// tags). Deleting a digest removes the manifest and all its tags. A tag list
// answered NAME_UNKNOWN is a not-found error, as skopeo and crane report it;
// distribution says so both for a missing repository and for one holding
// only untagged manifests, and the host reads it as no tags where that is
// safe (a target it writes to, the tags inspect shows). distribution 2.x
// cannot resume an upload after a PATCH broke half-way (it cancels a session
// whose bytes moved past its state token); the upload then fails with a
// cannot-resume error and the caller retries the blob.
//
// Chunked uploads meet registries that bend the spec: GHCR refuses a PATCH
// over 4 MiB (416, "exceeds the maximum permissible limit of 4.00MiB") and a
// proxy in front of a registry may answer 413; the chunk is sent again in
// chunks of the size named (else half, down to 16 KiB) from the same
// session, and the registry's connection keeps the size for later uploads
// (a refused chunk that the replay window cannot resend fails as
// unavailable, and the host's retry starts the blob at the new size). ECR
// stores every chunk but its Range header stays at the end of the first
// (aws/containers-roadmap#2831): the answer's Range is not checked, the
// registry's digest check at commit is what guards the bytes. A minimum
// chunk named in OCI-Chunk-Min-Length is honoured. A chunked upload can
// outlive its bearer token (Docker Hub's live 300 s) and a PATCH refused
// for it cannot be sent again from a stream, so a token older than
// Plugin.TokenRenewAge is renewed between chunks by a GET of the session
// sent without it. Quay answers a manifest
// PUT with 202: any 2xx stores a manifest, as for docker, skopeo and crane
// (the 202 is read as 201 for oras-go, which pushes manifests with a subject
// and the referrers tag index and wants 201).
//
// This package must never import host, cmd or other plugins.
package registry
