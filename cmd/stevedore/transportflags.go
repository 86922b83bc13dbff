package main

import (
	"strconv"

	"github.com/spf13/pflag"
)

// transportFlags are the per-endpoint settings handed to a transport as
// options (docker:// uses them; file transports ignore them).
type transportFlags struct {
	creds     string
	token     string
	authfile  string
	certDir   string
	tlsVerify bool
	noCreds   bool
}

// register adds the flags with a prefix ("src-", "dest-" or "").
func (f *transportFlags) register(fs *pflag.FlagSet, prefix, what string) {
	if what != "" {
		what += " " // "the source registry"; "the registry" alone
	}
	fs.StringVar(&f.creds, prefix+"creds", "", "USER[:PASSWORD] for the "+what+"registry")
	fs.StringVar(&f.token, prefix+"registry-token", "", "bearer token for the "+what+"registry")
	fs.StringVar(&f.authfile, prefix+"authfile", "", "auth file for the "+what+"registry (default: $REGISTRY_AUTH_FILE, containers auth.json, docker config.json)")
	fs.StringVar(&f.certDir, prefix+"cert-dir", "", "directory of CA certificates (*.crt) and client keys (*.cert, *.key) for the "+what+"registry")
	fs.BoolVar(&f.tlsVerify, prefix+"tls-verify", true, "require HTTPS and verify certificates of the "+what+"registry (false also allows plain HTTP)")
	fs.BoolVar(&f.noCreds, prefix+"no-creds", false, "access the "+what+"registry anonymously")
}

// registerBoth adds the flags of a two-registry command (copy, sync) that
// set both sides at once; a side's own flag wins.
func (f *transportFlags) registerBoth(fs *pflag.FlagSet) {
	fs.StringVar(&f.authfile, "authfile", "", "auth file for both registries")
	fs.StringVar(&f.creds, "creds", "", "USER[:PASSWORD] for both registries (--src-creds, --dest-creds, a side's token or --*-no-creds win)")
	fs.BoolVar(&f.tlsVerify, "tls-verify", true, "require HTTPS and verify certificates of both registries (--src-tls-verify, --dest-tls-verify win)")
}

// options turns the flags into transport options; global fills what the
// prefixed flags left unset (--authfile for --src-authfile).
func (f *transportFlags) options(fs *pflag.FlagSet, prefix string, global *transportFlags) map[string]string {
	o := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			o[k] = v
		}
	}
	set("creds", f.creds)
	set("registry-token", f.token)
	set("authfile", f.authfile)
	set("cert-dir", f.certDir)
	if global != nil {
		if f.authfile == "" {
			set("authfile", global.authfile)
		}
		if f.creds == "" && f.token == "" && !f.noCreds {
			set("creds", global.creds)
		}
	}
	switch {
	case fs.Changed(prefix + "tls-verify"):
		o["tls-verify"] = strconv.FormatBool(f.tlsVerify)
	case global != nil && fs.Changed("tls-verify"):
		o["tls-verify"] = strconv.FormatBool(global.tlsVerify)
	}
	if f.noCreds {
		o["no-creds"] = "true"
	}
	if prefix != "" {
		// Hints in the transport's errors name this side's flags
		// (--src-tls-verify, not --tls-verify).
		o["flag-prefix"] = prefix
	}
	return o
}
