package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/stevedore-oci/stevedore/core"
)

// checkAtLeast refuses a numeric flag given below its least useful value:
// a negative count was taken as the default (or, for --newest, as no
// limit) where the same key in a sync file is an error.
func checkAtLeast(fs *pflag.FlagSet, least map[string]float64) error {
	for name, min := range least {
		f := fs.Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		v, err := strconv.ParseFloat(f.Value.String(), 64)
		if err == nil && v < min {
			return fmt.Errorf("--%s %s: want %g or more: %w", name, f.Value, min, core.ErrInvalid)
		}
	}
	return nil
}
