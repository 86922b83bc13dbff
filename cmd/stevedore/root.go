package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/stevedore-oci/stevedore/host"
)

var (
	globalDebug          bool
	globalPluginLock     string
	globalRegistriesConf string
	// globalQuiet is a command's -q: the host logs no warnings.
	globalQuiet bool

	hostOnce sync.Once
	theHost  *host.Host
	hostErr  error
)

// getHost creates the process-wide Host on first use, so commands that need
// no transport start no plugin.
func getHost() (*host.Host, error) {
	hostOnce.Do(func() {
		// Warnings only, one line each without a timestamp (-q: errors
		// only); --debug logs everything, with times.
		level := hclog.Warn
		if globalQuiet {
			level = hclog.Error
		}
		if globalDebug {
			level = hclog.Debug
		}
		logger := hclog.New(&hclog.LoggerOptions{Name: "stevedore", Level: level, Output: os.Stderr, DisableTime: !globalDebug})
		if globalRegistriesConf != "" {
			// The docker transport reads it, as skopeo's --registries-conf.
			abs, err := filepath.Abs(globalRegistriesConf)
			if err == nil {
				err = os.Setenv("CONTAINERS_REGISTRIES_CONF", abs)
			}
			if err != nil {
				hostErr = fmt.Errorf("--registries-conf: %w", err)
				return
			}
		}
		pins, err := host.LoadPins(globalPluginLock)
		if err != nil {
			hostErr = err
			return
		}
		theHost, hostErr = host.New(host.Options{Logger: logger, Pins: pins})
		abortable.Store(theHost)
	})
	return theHost, hostErr
}

// abortable is the host, for the signal handler's goroutine.
var abortable atomic.Pointer[host.Host]

func closeHost() {
	if theHost != nil {
		theHost.Close()
	}
}

// abortHost kills the host's plugins at once (a second interrupt).
func abortHost() {
	if h := abortable.Load(); h != nil {
		h.Abort()
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "stevedore",
		Short:         "Copy, inspect, mirror and serve container images without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return askCredsPasswords(cmd)
		},
		Long: `stevedore works on container images at rest: it copies, inspects, lists and deletes
images between registries (docker://), OCI layouts (oci:), archives (oci-archive:,
docker-archive:), directories (dir:) and static trees (static:), through transport
plugins found on $STEVEDORE_PLUGIN_PATH, next to the stevedore binary, and in
$XDG_DATA_HOME/stevedore/plugins.`,
	}
	root.PersistentFlags().BoolVar(&globalDebug, "debug", false, "log debug output of the host and plugins to stderr")
	root.PersistentFlags().StringVar(&globalPluginLock, "plugin-lock", "", "pin file of plugin sha256 sums (\"SHA256  NAME-OR-PATH\" lines); a plugin that differs is refused (default $XDG_CONFIG_HOME/stevedore/plugins.lock if it exists)")
	// Accepted for skopeo compatibility; stevedore has no signature policy yet.
	root.PersistentFlags().StringVar(&globalRegistriesConf, "registries-conf", "", "containers-registries.conf(5) file for docker:// (location rewrites, mirrors, insecure and blocked registries); default $CONTAINERS_REGISTRIES_CONF, else ~/.config/containers/registries.conf or /etc/containers/registries.conf and their .d drop-ins")
	root.PersistentFlags().Bool("insecure-policy", false, "accepted for skopeo compatibility (no effect)")
	root.PersistentFlags().MarkHidden("insecure-policy")
	root.AddCommand(
		newCopyCmd(),
		newInspectCmd(),
		newListTagsCmd(),
		newListRepositoriesCmd(),
		newDeleteCmd(),
		newManifestDigestCmd(),
		newPluginsCmd(),
		newVersionCmd(),
		newStaticConfigCmd(),
		newServeCmd(),
		newGCCmd(),
		newLoginCmd(),
		newLogoutCmd(),
	)
	for _, extra := range extraCommands {
		root.AddCommand(extra())
	}
	for _, c := range root.Commands() {
		if c.Args != nil {
			c.Args = boolValueHint(c.Args)
		}
	}
	return root
}

// boolValueHint explains a wrong argument count caused by a boolean flag
// given its value after a space, as skopeo users type it
// (--dest-tls-verify false): the value became an argument, and cobra said
// only "accepts 2 arg(s), received 3".
func boolValueHint(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		if err == nil {
			return nil
		}
		for _, a := range args {
			if a != "true" && a != "false" {
				continue
			}
			var bools []string
			cmd.Flags().Visit(func(f *pflag.Flag) {
				if f.Value.Type() == "bool" {
					bools = append(bools, f.Name)
				}
			})
			flag := "FLAG" // which one the value followed is not known here
			if len(bools) == 1 {
				flag = bools[0]
			}
			if len(bools) > 0 {
				return fmt.Errorf("%w: %q was taken as an argument: a boolean flag takes its value after '=' (--%s=%s)", err, a, flag, a)
			}
		}
		return err
	}
}

// extraCommands are added by files of other features (serve, login, ...).
var extraCommands []func() *cobra.Command
