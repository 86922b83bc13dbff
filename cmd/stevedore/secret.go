package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stevedore-oci/stevedore/core"
)

// stdinTerminal reports whether the standard input is a terminal to ask a
// secret on.
var stdinTerminal = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// readSecret asks for a secret on the terminal, without echoing it
// (golang.org/x/term); the prompt goes to stderr.
func readSecret(prompt string) (string, error) {
	fmt.Fprint(os.Stderr, prompt)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}

// askCredsPasswords completes the --creds, --src-creds and --dest-creds
// given as USER alone by asking each password on the terminal, as skopeo
// does; without a terminal such a flag is an error naming it.
func askCredsPasswords(cmd *cobra.Command) error {
	// One way to authenticate per registry: the transport refused the mix
	// naming its options ("option no-creds conflicts with creds and
	// registry-token"), not the flags given.
	for _, prefix := range []string{"", "src-", "dest-"} {
		var given []string
		for _, name := range []string{"creds", "registry-token", "no-creds"} {
			if f := cmd.Flags().Lookup(prefix + name); f != nil && f.Changed && f.Value.String() != "" && f.Value.String() != "false" {
				given = append(given, "--"+prefix+name)
			}
		}
		if len(given) > 1 {
			return fmt.Errorf("%s exclude each other: give one: %w", strings.Join(given, " and "), core.ErrInvalid)
		}
	}
	for _, name := range []string{"creds", "src-creds", "dest-creds"} {
		f := cmd.Flags().Lookup(name)
		if f != nil && f.Changed && strings.HasPrefix(f.Value.String(), ":") {
			// Named here, with the flag: the transport could only say
			// its option was malformed. The value holds a secret.
			return fmt.Errorf("--%s gives an empty user name: give USER:PASSWORD: %w", name, core.ErrInvalid)
		}
		if f == nil || !f.Changed || f.Value.String() == "" || strings.Contains(f.Value.String(), ":") {
			continue
		}
		user := f.Value.String()
		if !stdinTerminal() {
			return fmt.Errorf("--%s %s gives no password and the standard input is not a terminal to ask it on: give USER:PASSWORD: %w", name, user, core.ErrInvalid)
		}
		pass, err := readSecret(fmt.Sprintf("Password for %s (--%s): ", user, name))
		if err != nil {
			return err
		}
		if err := f.Value.Set(user + ":" + pass); err != nil {
			return err
		}
	}
	return nil
}
