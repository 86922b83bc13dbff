package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/host/auth"
)

func newLoginCmd() *cobra.Command {
	var (
		o             auth.LoginOptions
		passwordStdin bool
		tlsVerify     bool
		getLogin      bool
	)
	cmd := &cobra.Command{
		Use:   "login [flags] REGISTRY",
		Short: "Log in to a registry, saving the credentials where docker, podman and skopeo read them",
		Long: `login checks a user name and password against REGISTRY (docker.io for Docker Hub)
and saves them in the auth file: --authfile, else $REGISTRY_AUTH_FILE, else
${XDG_RUNTIME_DIR}/containers/auth.json (the file podman and skopeo use). When that
file names a credential helper (credsStore or credHelpers), the helper keeps the
secret. The password is read from --password, --password-stdin, or a prompt.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			o.Registry = args[0]
			o.Insecure = !tlsVerify
			if getLogin {
				key, _, err := auth.NormalizeRegistry(o.Registry)
				if err != nil {
					return err
				}
				path := o.AuthFile
				if path == "" {
					path = auth.DefaultAuthFile()
				}
				c, ok, err := auth.Lookup(ctx, path, key)
				if err != nil {
					return err
				}
				if !ok || c.Username == "" {
					return fmt.Errorf("not logged in to %s (no entry in %s): %w", key, path, core.ErrNotFound)
				}
				return printResult(cmd, c.Username)
			}
			in := bufio.NewReader(cmd.InOrStdin())
			if passwordStdin {
				if o.Password != "" {
					return fmt.Errorf("--password and --password-stdin are exclusive: %w", core.ErrInvalid)
				}
				if o.Username == "" {
					return fmt.Errorf("--password-stdin needs --username: %w", core.ErrInvalid)
				}
				b, err := io.ReadAll(in)
				if err != nil {
					return fmt.Errorf("read password from stdin: %w", err)
				}
				o.Password = strings.TrimRight(string(b), "\r\n")
				if o.Password == "" {
					return fmt.Errorf("--password-stdin: the standard input held no password: %w", core.ErrInvalid)
				}
			}
			// Prompts go to a terminal only: before, an input that ended
			// left "Username: stevedore: read username: EOF" on one line.
			terminal := cmd.InOrStdin() == os.Stdin && stdinTerminal()
			if o.Username == "" {
				if terminal {
					fmt.Fprint(cmd.ErrOrStderr(), "Username: ")
				}
				line, err := in.ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("no user name: give --username (the standard input ended before one): %w", core.ErrInvalid)
				}
				o.Username = strings.TrimSpace(line)
			}
			if o.Password == "" {
				if terminal {
					// Hidden as it is typed.
					pass, err := readSecret("Password: ")
					if err != nil {
						return err
					}
					o.Password = pass
				} else {
					line, err := in.ReadString('\n')
					if err != nil && line == "" {
						return fmt.Errorf("no password: give --password-stdin or --password (the standard input ended before one): %w", core.ErrInvalid)
					}
					o.Password = strings.TrimRight(line, "\r\n")
				}
			}
			path, err := auth.Login(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Login Succeeded! (credentials saved in %s)\n", path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Username, "username", "u", "", "user name")
	f.StringVarP(&o.Password, "password", "p", "", "password (visible to other users of this machine; prefer --password-stdin)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	f.StringVar(&o.AuthFile, "authfile", "", "auth file to write (default $REGISTRY_AUTH_FILE or ${XDG_RUNTIME_DIR}/containers/auth.json)")
	f.StringVar(&o.CertDir, "cert-dir", "", "directory of CA certificates (*.crt) and client keys (*.cert, *.key) for the registry")
	f.BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS and verify the registry's certificate (false also allows plain HTTP)")
	f.BoolVar(&getLogin, "get-login", false, "print the user name saved for REGISTRY and exit")
	return cmd
}

func newLogoutCmd() *cobra.Command {
	var (
		authfile string
		all      bool
	)
	cmd := &cobra.Command{
		Use:   "logout [flags] REGISTRY | --all",
		Short: "Remove the saved credentials of a registry",
		Args: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				// cobra.NoArgs said: unknown command "REGISTRY".
				return fmt.Errorf("--all removes every registry's credentials: give no REGISTRY (%s) with it: %w", args[0], core.ErrInvalid)
			}
			if all {
				return nil
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := authfile
			if path == "" {
				path = auth.DefaultAuthFile()
			}
			if all {
				keys, err := auth.RemoveAll(path)
				if err != nil {
					return err
				}
				if len(keys) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "No credentials in %s\n", path)
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Removed login credentials for %s from %s\n", strings.Join(keys, ", "), path)
				return nil
			}
			path, err := auth.Logout(cmd.Context(), args[0], path)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed login credentials for %s from %s\n", args[0], path)
			return nil
		},
	}
	cmd.Flags().StringVar(&authfile, "authfile", "", "auth file to edit (default $REGISTRY_AUTH_FILE or ${XDG_RUNTIME_DIR}/containers/auth.json)")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove the credentials of every registry in the auth file")
	return cmd
}
